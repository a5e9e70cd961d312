/// `CacheIndex`: totals and listings for `soak cache`, and the index file itself.
import Foundation
import S3
import SoakCore

extension CacheIndex {
    struct Totals {
        var objects: Int64 = 0, withData: Int64 = 0, complete: Int64 = 0, blocks: Int64 = 0
    }

    func totals() throws -> Totals {
        try locked {
            var t = Totals()
            try stmt("SELECT count(*), count(CASE WHEN cached>0 THEN 1 END), count(CASE WHEN cached>=size AND cached>0 THEN 1 END) FROM objects")
                .query { t.objects = $0.int(0); t.withData = $0.int(1); t.complete = $0.int(2) }
            try stmt("SELECT slots FROM blockmaps").query { t.blocks += Int64(BlockMap($0.blob(0)).present.count) }
            return t
        }
    }

    /// Every object row under `prefix` of one bucket, in key order (the mount's namespace).
    public func objects(bucketID: Int64, prefix: String) throws -> [CachedObject] {
        try locked {
            var out: [CachedObject] = []
            try stmt("SELECT \(Self.objectColumns) FROM objects WHERE bucket=?1 AND substr(key, 1, length(?2))=?2 ORDER BY key")
                .query([.int(bucketID), .text(prefix)]) { out.append(object(from: $0)) }
            return out
        }
    }

    /// Objects under `bucket`/`prefix` (nil bucket: all), key order.
    public func list(bucket: String?, prefix: String, onlyCached: Bool) throws -> [CacheEntry] {
        try locked {
            var out: [CacheEntry] = []
            let sql = """
                SELECT b.name, o.key, o.size, o.cached, o.etag FROM objects o JOIN buckets b ON b.id=o.bucket
                WHERE (?1 IS NULL OR b.name=?1) AND substr(o.key, 1, length(?2))=?2 AND (?3=0 OR o.cached>0)
                ORDER BY b.name, o.key
                """
            try stmt(sql).query([bucket.map { .text($0) } ?? .null, .text(prefix), .int(onlyCached ? 1 : 0)]) {
                out.append(CacheEntry(bucket: $0.text(0), key: $0.text(1), size: $0.int(2), cachedBytes: $0.int(3),
                                      etag: Self.etag($0, 4)))
            }
            return out
        }
    }

    /// Ids of objects with data under `bucket`/`prefix`.
    func objectIDs(bucket: String?, prefix: String) throws -> [Int64] {
        try locked {
            var out: [Int64] = []
            try stmt("""
                SELECT o.id FROM objects o JOIN buckets b ON b.id=o.bucket
                WHERE (?1 IS NULL OR b.name=?1) AND substr(o.key, 1, length(?2))=?2 AND o.cached>0
                """).query([bucket.map { .text($0) } ?? .null, .text(prefix)]) { out.append($0.int(0)) }
            return out
        }
    }

    /// Bytes the index file (and its WAL) take on disk.
    public func fileBytes() -> Int64 {
        var total: Int64 = 0
        for suffix in ["", "-wal", "-shm"] {
            var st = stat()
            if stat(path + suffix, &st) == 0 { total += Int64(st.st_blocks) * 512 }
        }
        return total
    }

    /// Folds the WAL back into the main file (for measuring and after big deletions).
    public func checkpoint() throws {
        try locked { try db.exec("PRAGMA wal_checkpoint(TRUNCATE)") }
    }
}
