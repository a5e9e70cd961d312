/// `CacheIndex`: buckets, and what listings record and drop.
import Foundation
import S3
import SoakCore

extension CacheIndex {
    public func bucketID(endpoint: String, name: String) throws -> Int64 {
        try locked {
            let find = try stmt("SELECT id FROM buckets WHERE endpoint=?1 AND name=?2")
            if let id = try find.scalarInt([.text(endpoint), .text(name)]) { return id }
            // Not found: look again and add it under the write lock (another process may have).
            return try db.transaction {
                if let id = try find.scalarInt([.text(endpoint), .text(name)]) { return id }
                try stmt("INSERT INTO buckets(endpoint, name) VALUES(?1, ?2)").run([.text(endpoint), .text(name)])
                return db.lastInsertRowID
            }
        }
    }

    public func bucketName(_ id: Int64) throws -> String? {
        try locked {
            var name: String?
            try stmt("SELECT name FROM buckets WHERE id=?1").query([.int(id)]) { name = $0.text(0) }
            return name
        }
    }

    /// Records one page of a listing: new objects are added, unchanged ones stamped `listed`,
    /// and an object whose ETag or size changed is replaced by a new row (its old data is
    /// returned for unlinking). Returns the rows in listing order.
    public func recordListing(bucketID: Int64, objects: [ObjectInfo], stamp: Int64)
        throws -> (objects: [CachedObject], dropped: [DroppedData]) {
        try locked {
            try db.transaction {
                var out: [CachedObject] = []
                var dropped: [DroppedData] = []
                out.reserveCapacity(objects.count)
                let find = try stmt("SELECT \(Self.objectColumns) FROM objects WHERE bucket=?1 AND key=?2")
                let insert = try stmt("INSERT INTO objects(id, bucket, key, etag, size, mtime, listed) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                // Ids come from a counter, never reused (they name data files); read once per page.
                var lastID: Int64?
                let touch = try stmt("UPDATE objects SET listed=max(listed, ?2), mtime=?3 WHERE id=?1")  // never back in time: a concurrent, later listing keeps its stamp
                for o in objects {
                    var existing: CachedObject?
                    try find.query([.int(bucketID), .text(o.key)]) { existing = object(from: $0) }
                    let mtime: SQLValue = o.lastModified.map { .real($0) } ?? .null
                    if var e = existing {
                        if e.etag == o.etag && e.size == o.size {
                            try touch.run([.int(e.id), .int(stamp), mtime])
                            e.mtime = o.lastModified
                            out.append(e)
                            continue
                        }
                        dropped.append(try deleteObjectRow(e))
                    }
                    let id = try (lastID ?? stmt("SELECT value FROM counters WHERE name='objects'").scalarInt() ?? 0) + 1
                    lastID = id
                    try insert.run([.int(id), .int(bucketID), .text(o.key), Self.etagValue(o.etag), .int(o.size), mtime, .int(stamp)])
                    out.append(CachedObject(id: id, bucketID: bucketID, key: o.key, etag: o.etag,
                                            size: o.size, mtime: o.lastModified, gen: 0, cachedBytes: 0,
                                            verified: .unchecked))
                }
                if let lastID { try stmt("UPDATE counters SET value=?1 WHERE name='objects'").run([.int(lastID)]) }
                return (out, dropped)
            }
        }
    }

    /// After a complete listing of `prefix`: objects under it that the listing did not stamp
    /// were deleted remotely; their rows go and their data is returned for unlinking.
    public func finishListing(bucketID: Int64, prefix: String, stamp: Int64) throws -> [DroppedData] {
        try locked {
            try db.transaction {
                var gone: [CachedObject] = []
                try stmt("SELECT \(Self.objectColumns) FROM objects WHERE bucket=?1 AND listed<?3 AND substr(key, 1, length(?2))=?2")
                    .query([.int(bucketID), .text(prefix), .int(stamp)]) { gone.append(object(from: $0)) }
                var dropped: [DroppedData] = []
                for o in gone { dropped.append(try deleteObjectRow(o)) }
                try stmt("INSERT OR REPLACE INTO listings(bucket, prefix, listed) VALUES(?1, ?2, ?3)")
                    .run([.int(bucketID), .text(prefix), .int(stamp)])
                return dropped
            }
        }
    }

    /// After a complete delimiter listing of one directory `prefix`: its direct children (keys
    /// with no further `/`) that the listing did not stamp were deleted remotely. Deeper keys
    /// belong to the listings of subdirectories and are left alone.
    public func finishDirectoryListing(bucketID: Int64, prefix: String, stamp: Int64) throws -> [DroppedData] {
        try locked {
            try db.transaction {
                var gone: [CachedObject] = []
                try stmt("""
                    SELECT \(Self.objectColumns) FROM objects WHERE bucket=?1 AND listed<?3
                    AND substr(key, 1, length(?2))=?2 AND length(key)>length(?2) AND instr(substr(key, length(?2)+1), '/')=0
                    """).query([.int(bucketID), .text(prefix), .int(stamp)]) { gone.append(object(from: $0)) }
                var dropped: [DroppedData] = []
                for o in gone { dropped.append(try deleteObjectRow(o)) }
                return dropped
            }
        }
    }

    /// Inside a transaction: removes an object row, its block maps and its byte count.
    private func deleteObjectRow(_ o: CachedObject) throws -> DroppedData {
        try stmt("DELETE FROM objects WHERE id=?1").run([.int(o.id)])
        try stmt("DELETE FROM blockmaps WHERE obj=?1").run([.int(o.id)])
        if o.cachedBytes > 0 { try addCounter("bytes", -o.cachedBytes) }
        return DroppedData(id: o.id, gen: o.gen, bytes: o.cachedBytes)
    }

    func addCounter(_ name: String, _ delta: Int64) throws {
        try stmt("UPDATE counters SET value=value+?2 WHERE name=?1").run([.text(name), .int(delta)])
    }
}
