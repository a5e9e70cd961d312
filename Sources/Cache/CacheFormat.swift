/// The on-disk format of a cache directory, and its version.
///
///     CACHE/                 0700
///       CACHEDIR.TAG         the marker: soak made this directory (see below)
///       index.db             SQLite (WAL): the schema below; PRAGMA user_version = format version
///       data/ID.GEN          one sparse file per cached object version
///
/// The marker is a cache directory tag (https://bford.info/cachedir/: its first line is
/// `Signature: 8a477f597d28d172789f06886806bc55`, so backup tools skip the cache), then comment
/// lines, then soak's magic line `soak-cache-format N` with this format version. soak uses a
/// directory only if it holds this marker, or is missing or empty (then marks it), or holds an
/// index whose SQLite header carries `applicationID` (a cache from before the marker; marked
/// then). `CacheDirectory` decides, without opening any file with SQLite. The marker names the
/// format of the index once it is migrated; a newer one is refused before the index is opened.
///
/// A data file is named by the object's row id and its generation, never by its key, so no key
/// can name a path outside the cache. A row id belongs to one (bucket, key, ETag, size): a new
/// ETag gets a new row and a new file, so two versions never share bytes. The generation is
/// bumped when an object's data is dropped (eviction, corruption, a 412), so a fetch that was in
/// flight then lands in a file nobody references and its commit is refused.
import CSQLite
#if canImport(Glibc)
import Glibc
#endif

public enum CacheFormat {
    /// Bump on any incompatible change to the schema or the data layout.
    /// 2: present blocks packed 32 to a `blockmaps` row (1: a `blocks` row per block); new
    /// indexes use 1 KiB pages.
    /// 3: fewer b-trees and smaller rows: object ids from the `objects` counter (no
    /// AUTOINCREMENT, so no `sqlite_sequence`), no UNIQUE index on `buckets`, no foreign keys
    /// (an object's block maps are deleted with it explicitly), an MD5-shaped ETag stored as 16
    /// bytes. Older indexes are migrated in place, keeping their data.
    public static let version: Int32 = 3
    /// Blocks per `blockmaps` row: 32 slots of 5 bytes stay within the local payload of a
    /// 1 KiB page (about 230 bytes for a WITHOUT ROWID row), so no row spills to overflow pages.
    public static let chunkBlocks = 32
    /// SQLite page size of a new index. Rows here are small (an object is about 70 bytes), so
    /// 1 KiB pages waste less than the 4 KiB default: an empty index is 8 pages (one per table
    /// and index, the schema fitting on page 1). 512-byte pages were not kept: a full 32-block
    /// `blockmaps` row would overflow, and they did not shrink every index (index sizes per
    /// object: docs/BENCHMARKS.md, cache index and data files).
    static let pageSize = 1024
    /// PRAGMA application_id: tells a soak index from any other SQLite file ("soak").
    public static let applicationID: Int32 = 0x736F_616B
    /// 1 MiB blocks: the unit of presence, checksum and on-demand fetch. Large enough that the
    /// index stays small (one row per MiB), small enough that a random 4 KiB read fetches little.
    public static let blockSize: Int64 = 1 << 20

    /// Compact on purpose: the schema text lives in page 1, and with this spelling all of it
    /// fits there (an empty index of 8 pages). `id INTEGER PRIMARY KEY` is the rowid.
    static let schema = """
        CREATE TABLE buckets(id INTEGER PRIMARY KEY,endpoint TEXT,name TEXT);
        CREATE TABLE objects(id INTEGER PRIMARY KEY,bucket INT,key TEXT,etag,size INT,mtime REAL,listed INT,\
        gen INT DEFAULT 0,cached INT DEFAULT 0,atime INT DEFAULT 0,verified INT DEFAULT 0);
        CREATE UNIQUE INDEX objects_key ON objects(bucket,key);
        CREATE INDEX objects_lru ON objects(atime)WHERE cached>0;
        CREATE TABLE blockmaps(obj INT,chunk INT,slots BLOB,PRIMARY KEY(obj,chunk))WITHOUT ROWID;
        CREATE TABLE listings(bucket INT,prefix TEXT,listed INT,PRIMARY KEY(bucket,prefix))WITHOUT ROWID;
        CREATE TABLE counters(name TEXT PRIMARY KEY,value INT)WITHOUT ROWID;
        INSERT INTO counters VALUES('bytes',0),('hits',0),('misses',0),('evicted',0),('objects',0);
        """

    /// Opens (creating if new) and checks the format: a newer version is refused, an older one
    /// (none exists yet) would be rebuilt by the caller.
    static func prepare(_ db: SQLiteDatabase) throws -> Status {
        // Switching a new file to WAL needs it to itself, and SQLite's busy handler does not
        // cover that: two processes opening a new cache at once retry here.
        // Only takes effect on a new, empty file (before WAL mode writes its first page).
        try db.exec("PRAGMA page_size=\(pageSize)")
        var waited = 0.0
        while true {
            do { try db.exec("PRAGMA journal_mode=WAL"); break } catch let e as SQLiteError where e.isBusy && waited < 30 {
                usleep(20_000)
                waited += 0.02
            }
        }
        try db.exec("PRAGMA synchronous=NORMAL")
        return try db.transaction {
            let app = try db.prepare("PRAGMA application_id").scalarInt() ?? 0
            let ver = Int32(try db.prepare("PRAGMA user_version").scalarInt() ?? 0)
            let tables = try db.prepare("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").scalarInt() ?? 0
            if ver == 0 && app == 0 && tables == 0 {
                try db.exec(schema)
                try db.exec("PRAGMA application_id=\(applicationID)")
                try db.exec("PRAGMA user_version=\(version)")
                return .created
            }
            guard app == Int64(applicationID) else { return .foreign }
            if ver > version { return .newer(ver) }
            if ver == 1 || ver == 2 {
                if ver == 1 { try migrateFrom1(db) }
                try migrateFrom2(db)
                return .migrated(from: ver)
            }
            if ver < version { return .older(ver) }
            return .current
        }
    }

    enum Status: Equatable { case created, current, migrated(from: Int32), older(Int32), newer(Int32), foreign }

    /// Format 1 → 2, inside the caller's transaction: the `blocks` rows are packed into
    /// `blockmaps` rows; everything else is unchanged.
    private static func migrateFrom1(_ db: SQLiteDatabase) throws {
        try db.exec("""
            CREATE TABLE blockmaps(
              obj INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
              chunk INTEGER NOT NULL,
              slots BLOB NOT NULL,
              PRIMARY KEY(obj, chunk)) WITHOUT ROWID;
            """)
        let insert = try db.prepare("INSERT INTO blockmaps(obj, chunk, slots) VALUES(?1, ?2, ?3)")
        var current: (obj: Int64, chunk: Int64)?
        var map = BlockMap()
        func flush() throws {
            if let c = current, !map.isEmpty { try insert.run([.int(c.obj), .int(c.chunk), .blob(map.blob)]) }
        }
        // Ordered by the primary key, so each chunk's blocks arrive together.
        try db.prepare("SELECT obj, idx, crc FROM blocks ORDER BY obj, idx").query { row in
            let (chunk, slot) = BlockMap.locate(Int(row.int(1)))
            let obj = row.int(0)
            if current.map({ $0.obj != obj || $0.chunk != chunk }) ?? true {
                try flush()
                current = (obj, chunk)
                map = BlockMap()
            }
            _ = map.set(slot: slot, crc: UInt32(truncatingIfNeeded: row.int(2)))
        }
        try flush()
        try db.exec("DROP TABLE blocks")
    }

    /// Format 2 → 3, inside the caller's transaction (foreign keys are off: this connection
    /// never turns them on, so dropping `objects` cascades nowhere). Tables whose schema changed
    /// are copied into a new table that takes the old one's name; rows keep their ids, ETags
    /// stay text (the reader takes both), and the `objects` counter starts past every id
    /// AUTOINCREMENT ever handed out, so no data-file name is reused.
    private static func migrateFrom2(_ db: SQLiteDatabase) throws {
        var lastID = try db.prepare("SELECT max(id) FROM objects").scalarInt() ?? 0
        if try db.prepare("SELECT count(*) FROM sqlite_master WHERE name='sqlite_sequence'").scalarInt() ?? 0 > 0 {
            lastID = max(lastID, try db.prepare("SELECT max(seq) FROM sqlite_sequence WHERE name='objects'").scalarInt() ?? 0)
        }
        try db.exec("""
            CREATE TABLE b3(id INTEGER PRIMARY KEY,endpoint TEXT,name TEXT);
            INSERT INTO b3 SELECT id,endpoint,name FROM buckets;
            CREATE TABLE m3(obj INT,chunk INT,slots BLOB,PRIMARY KEY(obj,chunk))WITHOUT ROWID;
            INSERT INTO m3 SELECT obj,chunk,slots FROM blockmaps;
            CREATE TABLE o3(id INTEGER PRIMARY KEY,bucket INT,key TEXT,etag,size INT,mtime REAL,listed INT,\
            gen INT DEFAULT 0,cached INT DEFAULT 0,atime INT DEFAULT 0,verified INT DEFAULT 0);
            INSERT INTO o3 SELECT id,bucket,key,etag,size,mtime,listed,gen,cached,atime,verified FROM objects;
            DROP TABLE blockmaps;
            DROP TABLE objects;
            DROP TABLE buckets;
            ALTER TABLE b3 RENAME TO buckets;
            ALTER TABLE m3 RENAME TO blockmaps;
            ALTER TABLE o3 RENAME TO objects;
            CREATE UNIQUE INDEX objects_key ON objects(bucket,key);
            CREATE INDEX objects_lru ON objects(atime)WHERE cached>0;
            """)
        try db.prepare("INSERT OR REPLACE INTO counters VALUES('objects',?1)").run([.int(lastID)])
        try db.exec("PRAGMA user_version=\(version)")
    }
}
