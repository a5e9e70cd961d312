/// The on-disk format of a cache directory, and its version.
///
///     CACHE/                 0700
///       index.db             SQLite (WAL): the schema below; PRAGMA user_version = format version
///       data/ID.GEN          one sparse file per cached object version
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
    /// indexes use 1 KiB pages. A version-1 index is migrated in place, keeping its data.
    public static let version: Int32 = 2
    /// Blocks per `blockmaps` row: 32 slots of 5 bytes stay within the local payload of a
    /// 1 KiB page (about 230 bytes for a WITHOUT ROWID row), so no row spills to overflow pages.
    public static let chunkBlocks = 32
    /// SQLite page size of a new index. Rows here are small (an object is about 130 bytes), so
    /// 1 KiB pages waste less than the 4 KiB default: an empty index is 10 pages (one per table
    /// and index), 10 KiB instead of 40 KiB, and `d/`'s 100 objects took 696 bytes each in
    /// format 1 with 4 KiB pages.
    static let pageSize = 1024
    /// PRAGMA application_id: tells a soak index from any other SQLite file ("soak").
    public static let applicationID: Int32 = 0x736F_616B
    /// 1 MiB blocks: the unit of presence, checksum and on-demand fetch. Large enough that the
    /// index stays small (one row per MiB), small enough that a random 4 KiB read fetches little.
    public static let blockSize: Int64 = 1 << 20

    static let schema = """
        CREATE TABLE buckets(
          id INTEGER PRIMARY KEY,
          endpoint TEXT NOT NULL,
          name TEXT NOT NULL,
          UNIQUE(endpoint, name));
        CREATE TABLE objects(
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          bucket INTEGER NOT NULL REFERENCES buckets(id),
          key TEXT NOT NULL,
          etag TEXT NOT NULL,
          size INTEGER NOT NULL,
          mtime REAL,
          listed INTEGER NOT NULL DEFAULT 0,
          gen INTEGER NOT NULL DEFAULT 0,
          cached INTEGER NOT NULL DEFAULT 0,
          atime INTEGER NOT NULL DEFAULT 0,
          verified INTEGER NOT NULL DEFAULT 0);
        CREATE UNIQUE INDEX objects_key ON objects(bucket, key);
        CREATE INDEX objects_lru ON objects(atime) WHERE cached > 0;
        CREATE TABLE blockmaps(
          obj INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
          chunk INTEGER NOT NULL,
          slots BLOB NOT NULL,
          PRIMARY KEY(obj, chunk)) WITHOUT ROWID;
        CREATE TABLE listings(
          bucket INTEGER NOT NULL,
          prefix TEXT NOT NULL,
          listed INTEGER NOT NULL,
          PRIMARY KEY(bucket, prefix)) WITHOUT ROWID;
        CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO counters VALUES('bytes', 0), ('hits', 0), ('misses', 0), ('evicted', 0);
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
        try db.exec("PRAGMA foreign_keys=ON")
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
            if ver == 1 {
                try migrateFrom1(db)
                return .migrated(from: 1)
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
        try db.exec("PRAGMA user_version=\(version)")
    }
}
