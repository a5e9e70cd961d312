/// The on-disk block cache that `soak prewarm` fills and the mount serves from.
///
/// How it works: a cache directory holds one sparse data file per object version and a SQLite
/// index (`CacheIndex`) of objects (from listings), present 1 MiB blocks with their CRC32C, LRU
/// times and counters (`CacheFormat` documents the layout and its version). `DiskCache` owns the
/// directory: it records a block only after its bytes are durable, checks a block's CRC before
/// first serving it, evicts least-recently-used objects to stay under `--cache-size`, and
/// implements `soak cache verify/evict/clear/stats`. Several processes may share a directory:
/// SQLite (WAL, `BEGIN IMMEDIATE`) serializes their index changes, and data-file generations
/// keep a late write from one process out of data another process dropped.
///
/// The mount sees the cache through two protocols, so it never names `CacheIndex`: `BlockStore`
/// (the read path) and `ObjectCatalog` (listings and counters). `DiskCache` implements both.
import S3

/// What the mount's read path needs from a cache: an object's current row, its data file, the
/// checked hit read, pins and use counts.
public protocol BlockStore: AnyObject, Sendable {
    var blockSize: Int64 { get }
    /// The row of object `id` now (its current generation), nil if it is gone.
    func object(id: Int64) throws -> CachedObject?
    /// Opens an object version's data file for reading; nil if it has none.
    func openData(_ o: CachedObject) throws -> Int32?
    /// Reads `buf.count` bytes of `o` at `offset` through `fd` (its open data file) if every
    /// block under them is present and sound, else nil (a miss).
    func read(_ o: CachedObject, offset: Int64, into buf: UnsafeMutableRawBufferPointer, fd: Int32) throws -> Int?
    /// Keeps an object's data from eviction until as many `unpin`s.
    func pin(_ id: Int64)
    func unpin(_ id: Int64)
    /// Notes that an object was used; `flushAccess` moves the noted ones up the LRU order.
    func noteAccess(_ id: Int64)
    func flushAccess() throws
    /// Adds reads served from the cache (hits) and reads that had to fetch (misses) to the
    /// cache's all-time counters.
    func countReads(hits: Int64, misses: Int64) throws
}

/// What the mount records about its bucket: listings (rows for the objects they show; an
/// object that changed or went loses its old data), the rows it knows, and usage counters.
public protocol ObjectCatalog: Sendable {
    /// The id of bucket `name` at `endpoint`, added on first use.
    func bucketID(endpoint: String, name: String) throws -> Int64
    /// The row of object `id` now, nil if it is gone.
    func object(id: Int64) throws -> CachedObject?
    /// Every row under `prefix` (at any depth).
    func objects(bucketID: Int64, prefix: String) throws -> [CachedObject]
    /// Records one listing page stamped `stamp` and returns its rows in listing order; the data
    /// of objects it shows changed is dropped.
    func recordListing(bucketID: Int64, objects: [ObjectInfo], stamp: Int64) throws -> [CachedObject]
    /// After a complete recursive listing of `prefix`: drops the rows under it that the listing
    /// did not stamp (deleted remotely) with their data. Returns how many.
    @discardableResult
    func finishListing(bucketID: Int64, prefix: String, stamp: Int64) throws -> Int
    /// As `finishListing`, after a complete delimiter listing of one directory: only its direct
    /// children are dropped.
    @discardableResult
    func finishDirectoryListing(bucketID: Int64, prefix: String, stamp: Int64) throws -> Int
    /// Bytes cached, bytes evicted and the cap in force.
    func usage() throws -> CacheUsage
    /// Makes the catalog's recent changes part of its main file (at a clean stop).
    func checkpoint() throws
}

/// A cache's size, as the mount reports it.
public struct CacheUsage: Sendable, Equatable {
    public var cachedBytes: Int64
    /// All time, as kept in the index.
    public var evictedBytes: Int64
    /// The cap in bytes now (`DiskCache.effectiveCap`); nil when nothing limits.
    public var capBytes: Int64?
    public init(cachedBytes: Int64, evictedBytes: Int64, capBytes: Int64?) {
        self.cachedBytes = cachedBytes; self.evictedBytes = evictedBytes; self.capBytes = capBytes
    }
}

extension DiskCache: BlockStore, ObjectCatalog {}

/// The SQLite library version this build links against.
public func sqliteVersion() -> String { SQLiteDatabase.libraryVersion }
