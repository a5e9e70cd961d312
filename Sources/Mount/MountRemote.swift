import Cache
import Engine
import Foundation
import Logging
import S3
import SoakCore

/// What the mount asks of the bucket after it is up: directory listings (lazy and refreshed
/// after the TTL) and the current version of a file being opened after the TTL. Both record
/// what they learn in the cache's catalog, so a changed object's old data is dropped there.
public protocol MountRemote: Sendable {
    /// The direct files and subdirectory prefixes of one directory prefix.
    func listDirectory(_ prefix: String) throws -> Namespace.Listing
    /// The current version of `object` (its index row), nil if the key is gone.
    func current(_ object: CachedObject) throws -> CachedObject?
}

/// `MountRemote` over S3: delimiter listings (retried with backoff) and HEAD.
final class S3MountRemote: MountRemote, Sendable {
    let stores: ObjectStorePool
    let cache: any ObjectCatalog
    let bucket: String
    let bucketID: Int64
    let retry: RetryPolicy
    let logger: Logger

    init(stores: ObjectStorePool, cache: any ObjectCatalog, bucket: String, bucketID: Int64, retry: RetryPolicy, logger: Logger) {
        self.stores = stores; self.cache = cache; self.bucket = bucket; self.bucketID = bucketID; self.retry = retry
        self.logger = logger
    }

    static func stamp() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    func listDirectory(_ prefix: String) throws -> Namespace.Listing {
        let stamp = Self.stamp()
        var out = Namespace.Listing()
        do {
            try stores.with { store in
                _ = try ListingPager.run(store: store, bucket: bucket, prefix: prefix, delimiter: "/", retry: retry,
                                         logger: logger) { page in
                    out.objects += try cache.recordListing(bucketID: bucketID, objects: page.objects, stamp: stamp)
                    out.prefixes += page.commonPrefixes
                }
            }
            try cache.finishDirectoryListing(bucketID: bucketID, prefix: prefix, stamp: stamp)
            logger.debug("listed \(prefix.isEmpty ? "/" : prefix): \(out.objects.count) files, \(out.prefixes.count) directories")
            return out
        } catch {
            // The bucket cannot be reached: show what the index knows, if anything.
            let known = try Self.directory(prefix, from: cache.objects(bucketID: bucketID, prefix: prefix))
            guard !known.objects.isEmpty || !known.prefixes.isEmpty else { throw error }
            logger.warning("listing \(prefix.isEmpty ? "/" : prefix) failed, showing the \(known.objects.count) files and \(known.prefixes.count) directories the cache index knows: \(error)")
            return known
        }
    }

    /// A delimiter listing of `prefix` derived from index rows of everything under it.
    static func directory(_ prefix: String, from rows: [CachedObject]) -> Namespace.Listing {
        var out = Namespace.Listing()
        var seen = Set<String>()
        for o in rows {
            guard let rel = KeyFilter.relativeKey(o.key, prefix: prefix), !rel.isEmpty else { continue }
            if let slash = rel.firstIndex(of: "/") {
                let p = prefix + rel[...slash]
                if seen.insert(p).inserted { out.prefixes.append(p) }
            } else {
                out.objects.append(o)
            }
        }
        return out
    }

    func current(_ object: CachedObject) throws -> CachedObject? {
        let info: ObjectInfo
        do {
            info = try stores.with { try $0.head(bucket: bucket, key: object.key) }
        } catch let e as S3Error where e.status == 404 {
            return nil
        }
        if info.etag == object.etag && info.size == object.size {
            return try cache.object(id: object.id) ?? object
        }
        logger.info("\(PathError.printable(object.key)) changed (ETag \(object.etag) → \(info.etag)); the next reads fetch the new version")
        return try cache.recordListing(bucketID: bucketID, objects: [info], stamp: Self.stamp()).first
    }
}
