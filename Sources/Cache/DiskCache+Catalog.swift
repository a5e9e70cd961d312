/// `DiskCache` as the mount's `ObjectCatalog` and `BlockStore`: listings recorded in the index
/// with the data files of changed and deleted objects unlinked in the same step, rows, and the
/// counters. Thin wrappers over `CacheIndex`, so callers outside this module need not name it.
import S3

extension DiskCache {
    public func bucketID(endpoint: String, name: String) throws -> Int64 {
        try index.bucketID(endpoint: endpoint, name: name)
    }

    public func object(id: Int64) throws -> CachedObject? { try index.object(id: id) }

    public func objects(bucketID: Int64, prefix: String) throws -> [CachedObject] {
        try index.objects(bucketID: bucketID, prefix: prefix)
    }

    public func recordListing(bucketID: Int64, objects: [ObjectInfo], stamp: Int64) throws -> [CachedObject] {
        let r = try index.recordListing(bucketID: bucketID, objects: objects, stamp: stamp)
        discard(r.dropped)
        return r.objects
    }

    @discardableResult
    public func finishListing(bucketID: Int64, prefix: String, stamp: Int64) throws -> Int {
        let gone = try index.finishListing(bucketID: bucketID, prefix: prefix, stamp: stamp)
        discard(gone)
        return gone.count
    }

    @discardableResult
    public func finishDirectoryListing(bucketID: Int64, prefix: String, stamp: Int64) throws -> Int {
        let gone = try index.finishDirectoryListing(bucketID: bucketID, prefix: prefix, stamp: stamp)
        discard(gone)
        return gone.count
    }

    public func usage() throws -> CacheUsage {
        let bytes = try index.counter("bytes")
        return CacheUsage(cachedBytes: bytes, evictedBytes: try index.counter("evicted"),
                          capBytes: effectiveCap(cachedBytes: bytes))
    }

    public func checkpoint() throws { try index.checkpoint() }

    /// Each counter is added only when non-zero: an idle mount writes nothing.
    public func countReads(hits: Int64, misses: Int64) throws {
        if hits > 0 { try index.count("hits", hits) }
        if misses > 0 { try index.count("misses", misses) }
    }
}
