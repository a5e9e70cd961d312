@testable import Cache
import Foundation
import S3
import SoakCore
import XCTest

/// The cache directory and its index: format versions, listings, commits, reads with checksum
/// checks, verify, eviction under a cap, several connections at once.
final class DiskCacheTests: XCTestCase {
    private var dir = ""
    private let bs = CacheFormat.blockSize

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "soak-cache-\(UUID().uuidString.prefix(8))"
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private func object(_ key: String, size: Int64, etag: String = "e1") -> ObjectInfo {
        ObjectInfo(key: key, size: size, etag: etag, lastModified: 1_700_000_000)
    }

    /// Writes `bytes` into the object's data file as a worker would and commits its blocks.
    @discardableResult
    private func fill(_ c: DiskCache, _ o: CachedObject, _ bytes: [UInt8], blocks: [Int]? = nil) throws -> [CacheIndex.LandedBlock] {
        let fd = open(c.dataPath(o), O_WRONLY | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var landed: [CacheIndex.LandedBlock] = []
        for i in blocks ?? Array(0..<o.blockCount(blockSize: bs)) {
            let r = o.blockRange(i, blockSize: bs)
            let slice = Array(bytes[Int(r.lowerBound)...Int(r.upperBound)])
            _ = slice.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(r.lowerBound)) }
            landed.append(.init(objectID: o.id, gen: o.gen, index: i, crc: CRC32C.checksum(slice), bytes: Int64(slice.count)))
        }
        close(fd)
        return try c.commit(landed)
    }

    /// `bytes` written at the start of the file at `path` (created if missing).
    static func writeFile(_ path: String, _ bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0, path)
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        close(fd)
    }

    /// One whole object written and committed (callable from any thread).
    static func write(_ c: DiskCache, _ o: CachedObject, _ bytes: [UInt8]) throws {
        writeFile(c.dataPath(o), bytes)
        try c.commit([.init(objectID: o.id, gen: o.gen, index: 0, crc: CRC32C.checksum(bytes), bytes: Int64(bytes.count))])
    }

    private func bytes(_ n: Int, seed: UInt64 = 1) -> [UInt8] {
        var rng = SeededRandom(seed: seed)
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    func testNewCacheIsPrivateAndVersioned() throws {
        _ = try DiskCache(directory: dir)
        var st = stat()
        XCTAssertEqual(stat(dir, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        let db = try SQLiteDatabase(path: dir + "/index.db")
        XCTAssertEqual(try db.prepare("PRAGMA user_version").scalarInt(), Int64(CacheFormat.version))
        var mode = ""
        try db.prepare("PRAGMA journal_mode").query { mode = $0.text(0) }
        XCTAssertEqual(mode, "wal", "several processes share the index through WAL")
        _ = try DiskCache(directory: dir)  // reopening the current version is fine
    }

    func testNewerFormatIsRefusedWithAClearError() throws {
        _ = try DiskCache(directory: dir)
        try SQLiteDatabase(path: dir + "/index.db").exec("PRAGMA user_version=\(CacheFormat.version + 1)")
        XCTAssertThrowsError(try DiskCache(directory: dir)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("format version \(CacheFormat.version + 1)") && text.contains("newer"), text)
        }
    }

    func testForeignDatabaseIsRefused() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try SQLiteDatabase(path: dir + "/index.db").exec("CREATE TABLE t(x)")
        XCTAssertThrowsError(try DiskCache(directory: dir)) { XCTAssertTrue("\($0)".contains("not a soak cache"), "\($0)") }
    }

    func testOlderFormatIsRebuiltEmpty() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let o = try c.index.recordListing(bucketID: b, objects: [object("k", size: 10)], stamp: 1).objects[0]
        try fill(c, o, bytes(10))
        try SQLiteDatabase(path: dir + "/index.db").exec("PRAGMA user_version=0")
        let again = try DiskCache(directory: dir)
        XCTAssertEqual(try again.stats().objects, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: again.dataPath(o)), "old data files go too")
    }

    func testNewIndexUsesSmallPages() throws {
        _ = try DiskCache(directory: dir)
        let db = try SQLiteDatabase(path: dir + "/index.db")
        XCTAssertEqual(try db.prepare("PRAGMA page_size").scalarInt(), 1024)
        try db.exec("PRAGMA wal_checkpoint(TRUNCATE)")
        XCTAssertEqual(try db.prepare("PRAGMA page_count").scalarInt(), 8,
                       "an empty index is one page per table and index, the whole schema in page 1")
    }

    /// Once a generation is dropped, nothing of it is served: not landed blocks, and not through
    /// a descriptor opened before the drop while a late fetch made a new file under its name.
    func testADroppedGenerationIsNeverServed() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let o = try c.index.recordListing(bucketID: b, objects: [object("k", size: bs)], stamp: 1).objects[0]
        let data = bytes(Int(bs), seed: 8)
        // A fetch of generation 0 had made its file (allocated, not yet written) when the drop came.
        let fd = open(c.dataPath(o), O_RDWR | O_CREAT, 0o644)
        XCTAssertEqual(ftruncate(fd, off_t(bs)), 0)
        close(fd)
        let held = try XCTUnwrap(try c.openData(o))
        defer { close(held) }
        try c.dropData(o)
        // A late fetch of generation 0 writes a new file under the old name and reports it.
        Self.writeFile(c.dataPath(o), data)
        c.noteLanded([.init(objectID: o.id, gen: o.gen, index: 0, crc: CRC32C.checksum(data), bytes: bs)])
        var buf = [UInt8](repeating: 1, count: 4096)
        XCTAssertNil(try buf.withUnsafeMutableBytes { try c.read(o, offset: 4096, into: $0, fd: held) },
                     "the held descriptor sees the old, unwritten file: never served")
        XCTAssertTrue(try c.read(o, offset: 0, count: 4096) == nil, "nor through a fresh descriptor")
    }

    /// Ids name data files, so one is never handed out twice, even after the row holding the
    /// highest id is deleted (plain rowids would reuse it).
    func testObjectIDsAreNeverReused() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        XCTAssertEqual(try c.index.bucketID(endpoint: "e", name: "b"), b)
        XCTAssertNotEqual(try c.index.bucketID(endpoint: "e", name: "other"), b)
        let first = try c.index.recordListing(bucketID: b, objects: [object("a", size: 1), object("b", size: 1)], stamp: 1).objects
        _ = try c.index.recordListing(bucketID: b, objects: [object("a", size: 1)], stamp: 2)
        XCTAssertEqual(try c.index.finishListing(bucketID: b, prefix: "", stamp: 2).map(\.id), [first[1].id])
        let changed = try c.index.recordListing(bucketID: b, objects: [object("a", size: 1, etag: "e2")], stamp: 3).objects[0]
        let added = try c.index.recordListing(bucketID: b, objects: [object("c", size: 1)], stamp: 3).objects[0]
        XCTAssertEqual(Set([first[0].id, first[1].id, changed.id, added.id]).count, 4, "\(first.map(\.id)) \(changed.id) \(added.id)")
        XCTAssertGreaterThan(added.id, first[1].id)
    }

    /// MD5-shaped ETags are stored in 16 bytes and read back as the same text; others as text.
    func testETagsRoundTrip() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let tags = ["0123456789abcdef0123456789abcdef", "0123456789ABCDEF0123456789ABCDEF",
                    "0123456789abcdef0123456789abcdef-3", "weird \"tag\"", ""]
        let objs = tags.enumerated().map { object("k\($0.offset)", size: 1, etag: $0.element) }
        _ = try c.index.recordListing(bucketID: b, objects: objs, stamp: 1)
        for (i, t) in tags.enumerated() {
            XCTAssertEqual(try c.index.lookup(bucketID: b, key: "k\(i)")?.etag, t)
        }
        XCTAssertEqual(try c.index.list(bucket: "b", prefix: "", onlyCached: false).map(\.etag), tags)
        let db = try SQLiteDatabase(path: dir + "/index.db")
        XCTAssertEqual(try db.prepare("SELECT length(etag) FROM objects WHERE key='k0'").scalarInt(), 16)
        // Unchanged on a second listing: the stored blob compares equal to the listed text.
        let again = try c.index.recordListing(bucketID: b, objects: objs, stamp: 2)
        XCTAssertEqual(again.dropped.count, 0)
    }

    /// An index of format 1 (one `blocks` row per block) or 2 (`blockmaps`), both with
    /// AUTOINCREMENT ids, foreign keys and text ETags, holding bucket 1 ("e", "b") and no objects.
    private func legacyIndex(version: Int) throws -> SQLiteDatabase {
        let blocks = version == 1
            ? "blocks(obj INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE, idx INTEGER NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY(obj, idx))"
            : "blockmaps(obj INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE, chunk INTEGER NOT NULL, slots BLOB NOT NULL, PRIMARY KEY(obj, chunk))"
        let db = try SQLiteDatabase(path: dir + "/index.db")
        try db.exec("PRAGMA journal_mode=WAL")
        try db.exec("""
            CREATE TABLE buckets(id INTEGER PRIMARY KEY, endpoint TEXT NOT NULL, name TEXT NOT NULL, UNIQUE(endpoint, name));
            CREATE TABLE objects(id INTEGER PRIMARY KEY AUTOINCREMENT, bucket INTEGER NOT NULL REFERENCES buckets(id),
              key TEXT NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL, mtime REAL, listed INTEGER NOT NULL DEFAULT 0,
              gen INTEGER NOT NULL DEFAULT 0, cached INTEGER NOT NULL DEFAULT 0, atime INTEGER NOT NULL DEFAULT 0,
              verified INTEGER NOT NULL DEFAULT 0);
            CREATE UNIQUE INDEX objects_key ON objects(bucket, key);
            CREATE INDEX objects_lru ON objects(atime) WHERE cached > 0;
            CREATE TABLE \(blocks) WITHOUT ROWID;
            CREATE TABLE listings(bucket INTEGER NOT NULL, prefix TEXT NOT NULL, listed INTEGER NOT NULL,
              PRIMARY KEY(bucket, prefix)) WITHOUT ROWID;
            CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            INSERT INTO counters VALUES('bytes', 0), ('hits', 0), ('misses', 0), ('evicted', 0);
            INSERT INTO buckets VALUES(1, 'e', 'b');
            PRAGMA application_id=\(CacheFormat.applicationID);
            PRAGMA user_version=\(version);
            """)
        return db
    }

    /// A format-2 index (AUTOINCREMENT ids, foreign keys, text ETags) is migrated in place:
    /// rows, block maps and reads survive, and the next id is past every id ever handed out.
    func testFormat2IndexIsMigratedKeepingItsData() throws {
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        let size = 3 * bs
        let data = bytes(Int(size), seed: 5)
        do {
            let db = try legacyIndex(version: 2)
            var map = BlockMap()
            for i in [0, 2] {
                let r = Int(Int64(i) * bs)..<Int(min(size, Int64(i + 1) * bs))
                _ = map.set(slot: i, crc: CRC32C.checksum(Array(data[r])))
            }
            try db.prepare("INSERT INTO objects(id, bucket, key, etag, size, listed, gen, cached) VALUES(2, 1, 'k', ?1, ?2, 1, 0, ?3)")
                .run([.text("0123456789abcdef0123456789abcdef"), .int(size), .int(2 * bs)])
            try db.prepare("INSERT INTO blockmaps VALUES(2, 0, ?1)").run([.blob(map.blob)])
            try db.exec("INSERT INTO objects(id, bucket, key, etag, size) VALUES(9, 1, 'gone', 'x', 1); DELETE FROM objects WHERE id=9")
            Self.writeFile(dir + "/data/2.0", data)
        }
        let c = try DiskCache(directory: dir)
        let db = try SQLiteDatabase(path: dir + "/index.db")
        XCTAssertEqual(try db.prepare("PRAGMA user_version").scalarInt(), Int64(CacheFormat.version))
        XCTAssertEqual(try db.prepare("SELECT count(*) FROM sqlite_master WHERE sql LIKE '%REFERENCES%' OR sql LIKE '%AUTOINCREMENT%'").scalarInt(), 0)
        XCTAssertEqual(try c.index.bucketID(endpoint: "e", name: "b"), 1)
        let o = try XCTUnwrap(try c.index.lookup(bucketID: 1, key: "k"))
        XCTAssertEqual(o.id, 2)
        XCTAssertEqual(o.etag, "0123456789abcdef0123456789abcdef")
        XCTAssertEqual(try c.index.presentBlocks(objectID: o.id).keys.sorted(), [0, 2])
        var buf = [UInt8](repeating: 0, count: Int(bs))
        let fd = try XCTUnwrap(try c.openData(o))
        defer { close(fd) }
        let got = try buf.withUnsafeMutableBytes { try c.read(o, offset: 2 * bs, into: $0, fd: fd) }
        XCTAssertEqual(got, Int(bs))
        XCTAssertEqual(buf, Array(data[Int(2 * bs)..<Int(3 * bs)]))
        XCTAssertEqual(try c.verify().corruptBlocks, 0)
        let added = try c.index.recordListing(bucketID: 1, objects: [object("new", size: 1)], stamp: 2).objects[0]
        XCTAssertEqual(added.id, 10, "past id 9, which AUTOINCREMENT handed out before it was deleted")
        // Deleting the migrated object takes its block maps with it (no cascade any more).
        _ = try c.index.recordListing(bucketID: 1, objects: [object("k", size: size, etag: "e2")], stamp: 3)
        XCTAssertEqual(try db.prepare("SELECT count(*) FROM blockmaps WHERE obj=2").scalarInt(), 0)
    }

    /// A format-1 index (one `blocks` row per block) is migrated in place: objects, present
    /// blocks and their CRCs survive, and reads are served from the old data files.
    func testFormat1IndexIsMigratedKeepingItsData() throws {
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        let n = CacheFormat.chunkBlocks
        let size = Int64(n + 3) * bs  // two chunks
        let data = bytes(Int(size), seed: 9)
        do {
            let db = try legacyIndex(version: 1)
            // Blocks 0, 1, n-1, n and n+2 present (a gap, and both chunks).
            let present = [0, 1, n - 1, n, n + 2]
            var cached: Int64 = 0
            for i in present {
                let r = Int(Int64(i) * bs)..<Int(Int64(i + 1) * bs)
                try db.prepare("INSERT INTO blocks VALUES(1, ?1, ?2)")
                    .run([.int(Int64(i)), .int(Int64(CRC32C.checksum(Array(data[r]))))])
                cached += bs
            }
            try db.prepare("INSERT INTO objects(id, bucket, key, etag, size, listed, gen, cached) VALUES(1, 1, 'k', 'e1', ?1, 1, 0, ?2)")
                .run([.int(size), .int(cached)])
            Self.writeFile(dir + "/data/1.0", data)
        }
        let c = try DiskCache(directory: dir)
        let db = try SQLiteDatabase(path: dir + "/index.db")
        XCTAssertEqual(try db.prepare("PRAGMA user_version").scalarInt(), Int64(CacheFormat.version))
        XCTAssertEqual(try db.prepare("SELECT count(*) FROM sqlite_master WHERE name='blocks'").scalarInt(), 0)
        let o = try XCTUnwrap(try c.index.lookup(bucketID: 1, key: "k"))
        let present = try c.index.presentBlocks(objectID: o.id)
        XCTAssertEqual(present.keys.sorted(), [0, 1, n - 1, n, n + 2])
        XCTAssertEqual(present[n], CRC32C.checksum(Array(data[Int(Int64(n) * bs)..<Int(Int64(n + 1) * bs)])))
        XCTAssertEqual(try c.index.presentBlocksIfCurrent(objectID: o.id, gen: 0, in: (n - 1)...n)?.keys.sorted(), [n - 1, n])
        var buf = [UInt8](repeating: 0, count: Int(2 * bs))
        let fd = try XCTUnwrap(try c.openData(o))
        defer { close(fd) }
        let got = try buf.withUnsafeMutableBytes { try c.read(o, offset: Int64(n - 1) * bs, into: $0, fd: fd) }
        XCTAssertEqual(got, Int(2 * bs), "blocks n-1 and n, across the chunk boundary, are served after the migration")
        XCTAssertEqual(buf, Array(data[Int(Int64(n - 1) * bs)..<Int(Int64(n + 1) * bs)]))
        XCTAssertEqual(try c.verify().corruptBlocks, 0)
    }

    func testCommitsAndDropsAcrossChunks() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let n = CacheFormat.chunkBlocks
        let o = try c.index.recordListing(bucketID: b, objects: [object("big", size: Int64(2 * n + 1) * bs)], stamp: 1).objects[0]
        let data = bytes(Int(o.size), seed: 4)
        let first = try fill(c, o, data, blocks: [0, n - 1, n, 2 * n])
        XCTAssertEqual(first.count, 4)
        XCTAssertEqual(try fill(c, o, data, blocks: [n, n + 1]).map(\.index), [n + 1], "a block already recorded is not again")
        XCTAssertEqual(try c.index.object(id: o.id)?.cachedBytes, 5 * bs)
        XCTAssertEqual(try c.stats().blocks, 5)
        let dropped = try c.index.dropBlocks(objectID: o.id, indices: [n - 1, n, n, 7]) { _ in self.bs }
        XCTAssertEqual(dropped, 2 * bs, "only present blocks count, each once")
        XCTAssertEqual(try c.index.presentBlocks(objectID: o.id).keys.sorted(), [0, n + 1, 2 * n])
        XCTAssertEqual(try c.index.object(id: o.id)?.cachedBytes, 3 * bs)
        // A stale generation is refused.
        let stale = CacheIndex.LandedBlock(objectID: o.id, gen: o.gen + 1, index: 3, crc: 1, bytes: bs)
        XCTAssertEqual(try c.commit([stale]).count, 0)
        try c.dropData(o)
        XCTAssertEqual(try c.index.presentBlocks(objectID: o.id), [:])
        XCTAssertEqual(try c.stats().blocks, 0)
    }

    func testListingAddsKeepsReplacesAndRemoves() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        XCTAssertEqual(try c.index.bucketID(endpoint: "e", name: "b"), b)
        let first = try c.index.recordListing(bucketID: b, objects: [object("p/a", size: 5), object("p/b", size: 6)], stamp: 1).objects
        try fill(c, first[0], bytes(5))
        // Same ETag: same row, data kept. New ETag: new row, old data dropped.
        let second = try c.index.recordListing(bucketID: b, objects: [object("p/a", size: 5), object("p/b", size: 6, etag: "e2")], stamp: 2)
        XCTAssertEqual(second.objects[0].id, first[0].id)
        XCTAssertEqual(second.objects[0].cachedBytes, 5)
        XCTAssertNotEqual(second.objects[1].id, first[1].id, "a changed object must get a new identity")
        XCTAssertEqual(second.dropped.map(\.id), [first[1].id])
        // p/b was not in a later complete listing of p/: removed.
        _ = try c.index.recordListing(bucketID: b, objects: [object("p/a", size: 5)], stamp: 3)
        let gone = try c.index.finishListing(bucketID: b, prefix: "p/", stamp: 3)
        XCTAssertEqual(gone.map(\.id), [second.objects[1].id])
        XCTAssertNil(try c.index.lookup(bucketID: b, key: "p/b"))
        XCTAssertNotNil(try c.index.lookup(bucketID: b, key: "p/a"))
    }

    func testOverlappingListingsNeverDropWhatTheLaterOneSaw() throws {
        // Two processes list the same prefix; the earlier listing's pages land after the later
        // one's. The later listing's cleanup must not take them for deleted objects.
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        _ = try c.index.recordListing(bucketID: b, objects: [object("p/a", size: 5)], stamp: 2)
        _ = try c.index.recordListing(bucketID: b, objects: [object("p/a", size: 5)], stamp: 1)
        XCTAssertTrue(try c.index.finishListing(bucketID: b, prefix: "p/", stamp: 2).isEmpty)
        XCTAssertTrue(try c.index.finishListing(bucketID: b, prefix: "p/", stamp: 1).isEmpty)
        XCTAssertNotNil(try c.index.lookup(bucketID: b, key: "p/a"))
    }

    func testCommitRecordsBlocksOnceAndRefusesAStaleGeneration() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let size = Int(bs) * 2 + 100
        let o = try c.index.recordListing(bucketID: b, objects: [object("k", size: Int64(size))], stamp: 1).objects[0]
        let data = bytes(size)
        XCTAssertEqual(try fill(c, o, data, blocks: [0, 2]).count, 2)
        XCTAssertEqual(try fill(c, o, data, blocks: [0]).count, 0, "a block already present is not counted twice")
        XCTAssertEqual(try c.index.object(id: o.id)?.cachedBytes, bs + 100)
        XCTAssertEqual(try c.stats().bytes, bs + 100)
        XCTAssertNil(try c.read(o, offset: 0, count: size), "block 1 is missing: a miss")
        XCTAssertEqual(try c.read(o, offset: 10, count: 20), Array(data[10..<30]))
        XCTAssertEqual(try c.read(o, offset: 2 * bs, count: 1000), Array(data[Int(2 * bs)...]))

        // Dropped (a 412, say): the generation moves on and late blocks of the old one are refused.
        try c.dropData(o)
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.dataPath(o)))
        XCTAssertEqual(try fill(c, o, data, blocks: [1]).count, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.dataPath(o)), "the stale file is removed")
        let now = try XCTUnwrap(try c.index.object(id: o.id))
        XCTAssertEqual(now.gen, o.gen + 1)
        XCTAssertEqual(now.cachedBytes, 0)
        XCTAssertEqual(try c.stats().bytes, 0)
    }

    /// Present blocks of a version in one query: empty (not nil) while the version is current but
    /// has no blocks, the blocks within the range asked for, and nil once the version or the row
    /// is gone.
    func testPresentBlocksIfCurrentTellsNoBlocksFromAStaleVersion() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let size = Int(bs) * 3
        let o = try c.index.recordListing(bucketID: b, objects: [object("k", size: Int64(size))], stamp: 1).objects[0]
        XCTAssertEqual(try c.index.presentBlocksIfCurrent(objectID: o.id, gen: o.gen), [:], "current, nothing cached")
        let data = bytes(size)
        try fill(c, o, data, blocks: [0, 2])
        let crc2 = CRC32C.checksum(Array(data[(2 * Int(bs))...]))
        XCTAssertEqual(try c.index.presentBlocksIfCurrent(objectID: o.id, gen: o.gen)?.keys.sorted(), [0, 2])
        XCTAssertEqual(try c.index.presentBlocksIfCurrent(objectID: o.id, gen: o.gen, in: 1...2), [2: crc2])
        XCTAssertNil(try c.index.presentBlocksIfCurrent(objectID: o.id, gen: o.gen + 1), "not this version")
        XCTAssertNil(try c.index.presentBlocksIfCurrent(objectID: o.id + 1000, gen: 0), "no such object")
        try c.dropData(o)
        XCTAssertNil(try c.index.presentBlocksIfCurrent(objectID: o.id, gen: o.gen), "dropped: a stale version")
        XCTAssertEqual(try c.index.presentBlocksIfCurrent(objectID: o.id, gen: o.gen + 1), [:])
    }

    func testCorruptBlockIsNeverServedAfterRestartAndVerifyDropsIt() throws {
        let size = Int(bs) + 5000
        let data = bytes(size)
        var o: CachedObject
        do {
            let c = try DiskCache(directory: dir)
            let b = try c.index.bucketID(endpoint: "e", name: "b")
            o = try c.index.recordListing(bucketID: b, objects: [object("k", size: Int64(size))], stamp: 1).objects[0]
            try fill(c, o, data)
        }
        // Flip one byte of block 1 on disk.
        let c = try DiskCache(directory: dir)
        let fd = open(c.dataPath(o), O_RDWR)
        var byte: UInt8 = 0
        _ = pread(fd, &byte, 1, off_t(bs + 17)); byte ^= 0xFF; _ = pwrite(fd, &byte, 1, off_t(bs + 17))
        close(fd)
        XCTAssertEqual(try c.read(o, offset: 0, count: 100), Array(data[0..<100]), "block 0 is sound")
        XCTAssertNil(try c.read(o, offset: bs, count: 100), "a corrupt block is a miss, never served")
        XCTAssertEqual(try c.index.presentBlocks(objectID: o.id).keys.sorted(), [0], "and it was dropped")

        // verify finds corruption too (fresh process view), and orphan files.
        try fill(c, o, data, blocks: [1])
        let fd2 = open(c.dataPath(o), O_RDWR)
        _ = pwrite(fd2, &byte, 1, off_t(3))  // corrupt block 0 now
        close(fd2)
        FileManager.default.createFile(atPath: c.dataPath(id: 999, gen: 0), contents: Data([1, 2, 3]))
        let r = try DiskCache(directory: dir).verify()
        XCTAssertEqual(r.blocksChecked, 2)
        XCTAssertEqual(r.corruptBlocks, 1)
        XCTAssertEqual(r.orphanFiles, 1)
        XCTAssertTrue(r.unrepaired.isEmpty)
        XCTAssertEqual(try c.index.presentBlocks(objectID: o.id).keys.sorted(), [1])
        XCTAssertEqual(try DiskCache(directory: dir).verify().corruptBlocks, 0, "a second verify finds it clean")
    }

    func testMissingDataFileMeansMissingBlocks() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let o = try c.index.recordListing(bucketID: b, objects: [object("k", size: 100)], stamp: 1).objects[0]
        try fill(c, o, bytes(100))
        unlink(c.dataPath(o))
        XCTAssertNil(try c.read(o, offset: 0, count: 10))
        XCTAssertEqual(try c.index.object(id: o.id)?.cachedBytes, 0)
    }

    func testEvictionKeepsTheCacheUnderItsCapLeastRecentlyUsedFirstAndSkipsPinned() throws {
        // Room for 3 one-block objects.
        let c = try DiskCache(directory: dir, capacity: .bytes(3 * bs))
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let objs = try c.index.recordListing(bucketID: b, objects: (0..<6).map { object("k\($0)", size: bs) }, stamp: 1).objects
        let data = bytes(Int(bs))
        try fill(c, objs[0], data); usleep(2000)
        try fill(c, objs[1], data); usleep(2000)
        try fill(c, objs[2], data); usleep(2000)
        c.noteAccess(objs[0].id); try c.flushAccess()  // k0 used again
        c.pin(objs[1].id)
        try fill(c, objs[3], data)
        // Over by one: the LRU unpinned object is k2 (k1 pinned, k0 touched).
        XCTAssertLessThanOrEqual(try c.stats().bytes, 3 * bs)
        XCTAssertEqual(try c.index.object(id: objs[2].id)?.cachedBytes, 0)
        XCTAssertEqual(try c.index.object(id: objs[1].id)?.cachedBytes, bs, "pinned objects stay")
        XCTAssertEqual(try c.index.object(id: objs[0].id)?.cachedBytes, bs)
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.dataPath(objs[2])), "evicted data is unlinked")
        c.unpin(objs[1].id)
        try fill(c, objs[4], data); usleep(2000)
        try fill(c, objs[5], data)
        XCTAssertLessThanOrEqual(try c.stats().bytes, 3 * bs)
        XCTAssertEqual(try c.stats().evictedBytes, 3 * bs)
        let (n, freed) = try c.evict(bucket: "b", prefix: "k")
        XCTAssertEqual(n, 3)
        XCTAssertEqual(freed, 3 * bs)
        XCTAssertEqual(try c.stats().bytes, 0)
    }

    func testTwoConnectionsCommittingAtOnceKeepTheCountersExact() throws {
        let a = try DiskCache(directory: dir)
        let b = try DiskCache(directory: dir)
        let bid = try a.index.bucketID(endpoint: "e", name: "b")
        let objs = try a.index.recordListing(bucketID: bid, objects: (0..<40).map { object("k\($0)", size: 4096) }, stamp: 1).objects
        let data = bytes(4096)
        final class Failures: @unchecked Sendable { let lock = NSLock(); var all: [String] = [] }
        let failures = Failures()
        // Two threads, two connections, interleaving transactions on one index.
        final class Done: @unchecked Sendable { var n = 0; let cond = NSCondition() }
        let done = Done()
        for (n, cache) in [a, b].enumerated() {
            Thread {
                for i in stride(from: n, to: 40, by: 2) {
                    do { try Self.write(cache, objs[i], data) } catch {
                        failures.lock.lock(); failures.all.append("\(error)"); failures.lock.unlock()
                    }
                }
                done.cond.lock(); done.n += 1; done.cond.signal(); done.cond.unlock()
            }.start()
        }
        done.cond.lock()
        while done.n < 2 { done.cond.wait() }
        done.cond.unlock()
        let failuresList = failures.all
        XCTAssertEqual(failuresList, [])
        XCTAssertEqual(try a.stats().bytes, 40 * 4096)
        XCTAssertEqual(try b.stats().completeObjects, 40)
    }

    func testClearEmptiesEverything() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let o = try c.index.recordListing(bucketID: b, objects: [object("k", size: 10)], stamp: 1).objects[0]
        try fill(c, o, bytes(10))
        try c.clear()
        let s = try c.stats()
        XCTAssertEqual(s.objects, 0)
        XCTAssertEqual(s.bytes, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.dataPath(o)))
    }

    func testCacheSizeParsing() throws {
        XCTAssertEqual(try CacheCapacity(parsing: "500M"), .bytes(500 << 20))
        XCTAssertEqual(try CacheCapacity(parsing: "20GiB"), .bytes(20 << 30))
        XCTAssertEqual(try CacheCapacity(parsing: "2GB"), .bytes(2_000_000_000))
        XCTAssertEqual(try CacheCapacity(parsing: "1000000"), .bytes(1_000_000))
        XCTAssertEqual(try CacheCapacity(parsing: "1.5T"), .bytes(Int64(1.5 * Double(1 << 40))))
        XCTAssertEqual(try CacheCapacity(parsing: "50%"), .percent(50))
        XCTAssertEqual(CacheCapacity.percent(50).bytes(filesystemBytes: 1000), 500)
        for bad in ["", "-1", "0", "abc", "10X", "150%", "0%", "1e30"] {
            XCTAssertThrowsError(try CacheCapacity(parsing: bad), bad) { XCTAssertTrue("\($0)".contains("--cache-size"), "\($0)") }
        }
    }
}
