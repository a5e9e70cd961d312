/// The SQLite index of a cache directory: objects from listings, present blocks with their
/// checksums, LRU times and counters. Only SQL lives here; files are `DiskCache`'s.
///
/// One connection per process, guarded by a lock; other processes share the file through WAL
/// and `BEGIN IMMEDIATE`. Every multi-row change is one transaction, so the index is always
/// in a state some sequence of whole operations produced.
import Foundation
import S3
import SoakCore

public final class CacheIndex: @unchecked Sendable {
    // @unchecked: the connection and statements are used only under `lock`; a Mutex would have
    // to hand the (non-Sendable) connection to every query, which is not done yet.
    let db: SQLiteDatabase
    private let lock = NSLock()
    private var statements: [String: SQLiteStatement] = [:]
    let path: String

    /// A data file that lost its row or generation and must be unlinked by the caller.
    public struct DroppedData: Sendable, Hashable {
        public var id: Int64
        public var gen: Int64
        public var bytes: Int64
    }

    /// A block that landed on disk, to be recorded present.
    public struct LandedBlock: Sendable, Hashable {
        public var objectID: Int64
        public var gen: Int64
        public var index: Int
        public var crc: UInt32
        public var bytes: Int64
        public init(objectID: Int64, gen: Int64, index: Int, crc: UInt32, bytes: Int64) {
            self.objectID = objectID; self.gen = gen; self.index = index; self.crc = crc; self.bytes = bytes
        }
    }

    init(path: String) throws {
        self.path = path
        do {
            db = try SQLiteDatabase(path: path)
        } catch let e as SQLiteError {
            throw CacheError.index(e)
        }
    }

    func prepareFormat() throws -> CacheFormat.Status {
        try locked { try CacheFormat.prepare(db) }
    }

    /// Drops every table (an older format is rebuilt empty; `soak cache clear`).
    func reset() throws {
        try locked {
            statements.removeAll()
            try db.transaction {
                var names: [String] = []
                try db.prepare("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
                    .query { names.append($0.text(0)) }
                for n in names { try db.exec("DROP TABLE IF EXISTS \"\(n)\"") }
                try db.exec("PRAGMA user_version=0")
                try db.exec("PRAGMA application_id=0")
            }
        }
        _ = try prepareFormat()
    }

    func locked<T>(_ body: () throws -> T) throws -> T {
        lock.lock(); defer { lock.unlock() }
        do { return try body() } catch let e as SQLiteError { throw CacheError.index(e) }
    }

    func stmt(_ sql: String) throws -> SQLiteStatement {
        if let s = statements[sql] { return s }
        let s = try db.prepare(sql)
        statements[sql] = s
        return s
    }

    static let objectColumns = "id, bucket, key, etag, size, mtime, gen, cached, verified"
    func object(from s: SQLiteStatement) -> CachedObject {
        CachedObject(id: s.int(0), bucketID: s.int(1), key: s.text(2), etag: Self.etag(s, 3), size: s.int(4),
                     mtime: s.optionalDouble(5), gen: s.int(6), cachedBytes: s.int(7),
                     verified: CachedObject.Verification(rawValue: Int(s.int(8))) ?? .unchecked)
    }

    /// An ETag as stored: 16 bytes when it is an MD5 in hex (most single-part objects), which
    /// saves 16 bytes a row; anything else as text.
    static func etagValue(_ etag: String) -> SQLValue {
        guard CachedObject.isMD5Hex(etag) else { return .text(etag) }
        var out = [UInt8](); out.reserveCapacity(16)
        var hi: UInt8 = 0
        for (i, c) in etag.utf8.enumerated() {
            let v = c <= 57 ? c - 48 : c - 87
            if i % 2 == 0 { hi = v << 4 } else { out.append(hi | v) }
        }
        return .blob(out)
    }

    static func etag(_ s: SQLiteStatement, _ col: Int32) -> String {
        guard s.isBlob(col) else { return s.text(col) }
        return lowercaseHex(s.blob(col))
    }

    // MARK: - Objects and blocks

    public func lookup(bucketID: Int64, key: String) throws -> CachedObject? {
        try locked {
            var o: CachedObject?
            try stmt("SELECT \(Self.objectColumns) FROM objects WHERE bucket=?1 AND key=?2")
                .query([.int(bucketID), .text(key)]) { o = object(from: $0) }
            return o
        }
    }

    public func object(id: Int64) throws -> CachedObject? {
        try locked {
            var o: CachedObject?
            try stmt("SELECT \(Self.objectColumns) FROM objects WHERE id=?1").query([.int(id)]) { o = object(from: $0) }
            return o
        }
    }

    /// Present blocks of an object version within `range` (all when nil), or nil when `gen` is
    /// not the object's current generation (its data was dropped: nothing of it may be served
    /// or fetched again) or the row is gone.
    public func presentBlocksIfCurrent(objectID: Int64, gen: Int64, in range: ClosedRange<Int>? = nil) throws -> [Int: UInt32]? {
        try locked {
            // One statement, so one read transaction (a prewarm makes this call per object, and
            // each transaction takes and drops its WAL locks with fcntl): no row when the
            // version is not current; one row with a NULL chunk when it has no blocks.
            var current = false
            var out: [Int: UInt32] = [:]
            let lo = range.map { BlockMap.locate($0.lowerBound).chunk } ?? 0
            let hi = range.map { BlockMap.locate($0.upperBound).chunk } ?? Int64.max
            try stmt("""
                SELECT b.chunk, b.slots FROM objects o
                LEFT JOIN blockmaps b ON b.obj=o.id AND b.chunk BETWEEN ?3 AND ?4
                WHERE o.id=?1 AND o.gen=?2
                """).query([.int(objectID), .int(gen), .int(lo), .int(hi)]) { row in
                current = true
                if !row.isNull(0) { Self.decode(chunk: row.int(0), row.blob(1), into: &out, within: range) }
            }
            return current ? out : nil
        }
    }

    /// Present blocks of an object: index → CRC32C.
    public func presentBlocks(objectID: Int64) throws -> [Int: UInt32] {
        try locked {
            var out: [Int: UInt32] = [:]
            try stmt("SELECT chunk, slots FROM blockmaps WHERE obj=?1").query([.int(objectID)]) { row in
                Self.decode(chunk: row.int(0), row.blob(1), into: &out, within: nil)
            }
            return out
        }
    }

    private static func decode(chunk: Int64, _ blob: [UInt8], into out: inout [Int: UInt32], within range: ClosedRange<Int>?) {
        let base = Int(chunk) * CacheFormat.chunkBlocks
        for (slot, crc) in BlockMap(blob).present where range?.contains(base + slot) ?? true {
            out[base + slot] = crc
        }
    }

    /// Inside a transaction: the block map of one chunk, changed by `body` and written back
    /// (deleted when nothing is left in it).
    private func updateChunk(object: Int64, chunk: Int64, _ body: (inout BlockMap) -> Void) throws {
        var map = BlockMap()
        try stmt("SELECT slots FROM blockmaps WHERE obj=?1 AND chunk=?2").query([.int(object), .int(chunk)]) {
            map = BlockMap($0.blob(0))
        }
        body(&map)
        if map.isEmpty {
            try stmt("DELETE FROM blockmaps WHERE obj=?1 AND chunk=?2").run([.int(object), .int(chunk)])
        } else {
            try stmt("INSERT OR REPLACE INTO blockmaps(obj, chunk, slots) VALUES(?1, ?2, ?3)")
                .run([.int(object), .int(chunk), .blob(map.blob)])
        }
    }

    /// Records landed blocks (whose bytes the caller already made durable). A block whose object
    /// row is gone or whose generation moved on is refused: its bytes went to a dead file; so is
    /// one already recorded. Returns the accepted blocks.
    public func commit(_ blocks: [LandedBlock], now: Int64) throws -> [LandedBlock] {
        guard !blocks.isEmpty else { return [] }
        return try locked {
            try db.transaction {
                var accepted: [LandedBlock] = []
                let gen = try stmt("SELECT gen FROM objects WHERE id=?1")
                let grow = try stmt("UPDATE objects SET cached=cached+?2, atime=?3 WHERE id=?1")
                // One read and write per chunk touched, in a stable order.
                var groups: [Int64: [Int64: [LandedBlock]]] = [:]
                for b in blocks { groups[b.objectID, default: [:]][BlockMap.locate(b.index).chunk, default: []].append(b) }
                var total: Int64 = 0
                for (obj, chunks) in groups.sorted(by: { $0.key < $1.key }) {
                    var rowGen: Int64?
                    try gen.query([.int(obj)]) { rowGen = $0.int(0) }
                    guard let rowGen else { continue }
                    var bytes: Int64 = 0
                    for (chunk, list) in chunks.sorted(by: { $0.key < $1.key }) {
                        try updateChunk(object: obj, chunk: chunk) { map in
                            for b in list where b.gen == rowGen && map.set(slot: BlockMap.locate(b.index).slot, crc: b.crc) {
                                bytes += b.bytes
                                accepted.append(b)
                            }
                        }
                    }
                    if bytes > 0 { try grow.run([.int(obj), .int(bytes), .int(now)]) }
                    total += bytes
                }
                if total != 0 { try addCounter("bytes", total) }
                return accepted
            }
        }
    }

    /// Drops some blocks of an object (corrupt ones). Returns the bytes dropped.
    public func dropBlocks(objectID: Int64, indices: [Int], blockBytes: (Int) -> Int64) throws -> Int64 {
        try locked {
            try db.transaction {
                var bytes: Int64 = 0
                var byChunk: [Int64: [Int]] = [:]
                for i in Set(indices) { byChunk[BlockMap.locate(i).chunk, default: []].append(i) }
                for (chunk, list) in byChunk.sorted(by: { $0.key < $1.key }) {
                    try updateChunk(object: objectID, chunk: chunk) { map in
                        for i in list where map.clear(slot: BlockMap.locate(i).slot) { bytes += blockBytes(i) }
                    }
                }
                if bytes > 0 {
                    try stmt("UPDATE objects SET cached=max(0, cached-?2), verified=0 WHERE id=?1")
                        .run([.int(objectID), .int(bytes)])
                    try addCounter("bytes", -bytes)
                }
                return bytes
            }
        }
    }

    /// Drops all data of an object and moves it to a new generation (eviction, a 412, a failed
    /// MD5). Returns the old data file to unlink, or nil if the row is gone or `expectedGen`
    /// no longer matches.
    public func dropData(objectID: Int64, expectedGen: Int64? = nil, evicted: Bool = false) throws -> DroppedData? {
        try locked {
            try db.transaction {
                var o: CachedObject?
                try stmt("SELECT \(Self.objectColumns) FROM objects WHERE id=?1").query([.int(objectID)]) { o = object(from: $0) }
                guard let o, expectedGen == nil || o.gen == expectedGen else { return nil }
                try stmt("DELETE FROM blockmaps WHERE obj=?1").run([.int(o.id)])
                try stmt("UPDATE objects SET cached=0, gen=gen+1, verified=0 WHERE id=?1").run([.int(o.id)])
                if o.cachedBytes > 0 {
                    try addCounter("bytes", -o.cachedBytes)
                    if evicted { try addCounter("evicted", o.cachedBytes) }
                }
                return DroppedData(id: o.id, gen: o.gen, bytes: o.cachedBytes)
            }
        }
    }

    /// Objects holding data, least recently used first.
    public func lruObjects(limit: Int) throws -> [CachedObject] {
        try locked {
            var out: [CachedObject] = []
            try stmt("SELECT \(Self.objectColumns) FROM objects WHERE cached>0 ORDER BY atime, id LIMIT ?1")
                .query([.int(Int64(limit))]) { out.append(object(from: $0)) }
            return out
        }
    }

    /// Objects holding data, in id order after `afterID` (for verify).
    public func objectsWithData(afterID: Int64, limit: Int) throws -> [CachedObject] {
        try locked {
            var out: [CachedObject] = []
            try stmt("SELECT \(Self.objectColumns) FROM objects WHERE cached>0 AND id>?1 ORDER BY id LIMIT ?2")
                .query([.int(afterID), .int(Int64(limit))]) { out.append(object(from: $0)) }
            return out
        }
    }

    /// Every (id, gen) that owns a data file, for finding orphans.
    public func liveDataFiles() throws -> Set<String> {
        try locked {
            var out = Set<String>()
            try stmt("SELECT id, gen FROM objects").query { out.insert("\($0.int(0)).\($0.int(1))") }
            return out
        }
    }

    public func setVerified(objectID: Int64, _ v: CachedObject.Verification) throws {
        try setVerified([(objectID, v)])
    }

    /// Records several objects' checks in one transaction (a batch of MD5 checks: one
    /// transaction each cost a WAL append apiece, 5000 of them for `small/`).
    public func setVerified(_ results: [(objectID: Int64, verification: CachedObject.Verification)]) throws {
        guard !results.isEmpty else { return }
        try locked {
            try db.transaction {
                let up = try stmt("UPDATE objects SET verified=?2 WHERE id=?1")
                for r in results { try up.run([.int(r.objectID), .int(Int64(r.verification.rawValue))]) }
            }
        }
    }

    /// Marks objects used at `now` (their place in the LRU order), in one transaction.
    public func touch(objectIDs: [Int64], now: Int64) throws {
        guard !objectIDs.isEmpty else { return }
        try locked {
            try db.transaction {
                let up = try stmt("UPDATE objects SET atime=?2 WHERE id=?1 AND cached>0")
                for id in objectIDs { try up.run([.int(id), .int(now)]) }
            }
        }
    }

    public func count(_ name: String, _ delta: Int64) throws {
        try locked { try addCounter(name, delta) }
    }

    public func counter(_ name: String) throws -> Int64 {
        try locked { try stmt("SELECT value FROM counters WHERE name=?1").scalarInt([.text(name)]) ?? 0 }
    }
}
