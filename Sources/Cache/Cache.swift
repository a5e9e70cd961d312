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
/// Callers that only read (the mount's hit path) see the `BlockCache` protocol.

/// What the mount needs from a cache.
public protocol BlockCache: Sendable {
    /// Bytes `[offset, offset+count)` of `object` if every byte is present and sound, else nil.
    func read(_ object: CachedObject, offset: Int64, count: Int) throws -> [UInt8]?
}

extension DiskCache: BlockCache {}

/// The SQLite library version this build links against.
public func sqliteVersion() -> String { SQLiteDatabase.libraryVersion }
