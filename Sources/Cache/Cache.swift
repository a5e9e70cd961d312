/// The on-disk block cache (data files plus a SQLite index) that the mount serves from.
///
/// Part 2 of the plan fills this in. Part 1 only fixes the boundary: callers see the
/// `BlockCache` protocol, never SQLite, so the mount and the prefetcher can be tested
/// against an in-memory implementation.
import CSQLite

/// Identity of one version of one object: a cache entry is only valid for this exact tuple.
public struct ObjectVersion: Hashable, Sendable {
    public var bucket: String
    public var key: String
    public var etag: String
    public var size: Int64
    public init(bucket: String, key: String, etag: String, size: Int64) {
        self.bucket = bucket; self.key = key; self.etag = etag; self.size = size
    }
}

/// What the mount and prefetcher need from a cache.
public protocol BlockCache: Sendable {
    /// Bytes `[offset, offset+count)` of `object` if every byte is present, else nil.
    func read(_ object: ObjectVersion, offset: Int64, count: Int) throws -> [UInt8]?
}

/// The SQLite library version this build links against (proves the C target links).
public func sqliteVersion() -> String { String(cString: sqlite3_libversion()) }
