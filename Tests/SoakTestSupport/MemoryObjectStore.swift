/// An in-memory `ObjectStore` for tests of everything above the S3 client (test support: it
/// is no part of soak itself). `FaultInjectingStore` wraps it to fail calls on a script.
import Crypto
import Foundation
import S3
import SoakCore

public final class MemoryObjectStore: ObjectStore, @unchecked Sendable {
    // @unchecked: `objects` is guarded by `lock`.
    private let lock = NSLock()
    private var objects: [String: [String: (data: [UInt8], etag: String, modified: Double)]] = [:]
    /// Number of calls per operation, for tests that count requests.
    public private(set) var calls: [String: Int] = [:]

    public init() {}

    public func createBucket(_ b: String) { lock.lock(); objects[b] = objects[b] ?? [:]; lock.unlock() }

    /// Stores an object; its ETag is the MD5 of the bytes, as for a single-part upload.
    @discardableResult
    public func put(bucket: String, key: String, _ data: [UInt8], modified: Double = 1_700_000_000) -> String {
        let etag = lowercaseHex(Insecure.MD5.hash(data: data))
        lock.lock(); objects[bucket, default: [:]][key] = (data, etag, modified); lock.unlock()
        return etag
    }

    /// Flips the bits of byte `offset` of an object, keeping its ETag (bit rot on the server).
    public func corrupt(bucket: String, key: String, at offset: Int) {
        lock.lock(); objects[bucket]?[key]?.data[offset] ^= 0xFF; lock.unlock()
    }

    public func delete(bucket: String, key: String) { lock.lock(); objects[bucket]?[key] = nil; lock.unlock() }

    private func count(_ op: String) { calls[op, default: 0] += 1 }

    private func noBucket(_ op: String, _ b: String) -> S3Error {
        S3Error(kind: .http, operation: op, bucket: b, status: 404, code: "NoSuchBucket", message: "bucket not found")
    }

    public func listPage(bucket: String, prefix: String, delimiter: String?, continuationToken: String?,
                         maxKeys: Int) throws -> ListPage {
        lock.lock(); defer { lock.unlock() }
        count("list")
        guard let b = objects[bucket] else { throw noBucket("ListObjectsV2", bucket) }
        var keys = b.keys.filter { $0.hasPrefix(prefix) }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        if let t = continuationToken { keys = keys.filter { Array(t.utf8).lexicographicallyPrecedes(Array($0.utf8)) } }
        var page = ListPage()
        // Keys sharing a common prefix are adjacent in byte order, so a prefix is complete once
        // the next key does not roll up into it. A page ends only at a key that would add a new
        // entry, and the token is the last key consumed (possibly one inside a common prefix),
        // so the next page neither repeats nor skips an object or a prefix.
        var lastConsumed: String? = nil
        for k in keys {
            var rolledUp: String? = nil
            if let d = delimiter, !d.isEmpty, let r = k.dropFirst(prefix.count).range(of: d) {
                rolledUp = prefix + k.dropFirst(prefix.count)[..<r.upperBound]
            }
            if let p = rolledUp, page.commonPrefixes.last == p { lastConsumed = k; continue }
            if page.objects.count + page.commonPrefixes.count >= maxKeys {
                page.isTruncated = true
                page.nextContinuationToken = lastConsumed
                break
            }
            lastConsumed = k
            if let p = rolledUp { page.commonPrefixes.append(p); continue }
            let o = b[k]!
            page.objects.append(ObjectInfo(key: k, size: Int64(o.data.count), etag: o.etag, lastModified: o.modified))
        }
        return page
    }

    public func head(bucket: String, key: String) throws -> ObjectInfo {
        lock.lock(); defer { lock.unlock() }
        count("head")
        guard let b = objects[bucket] else { throw noBucket("HeadObject", bucket) }
        guard let o = b[key] else {
            throw S3Error(kind: .http, operation: "HeadObject", bucket: bucket, key: key, status: 404, message: "no such key")
        }
        return ObjectInfo(key: key, size: Int64(o.data.count), etag: o.etag, lastModified: o.modified)
    }

    public func get(bucket: String, key: String, range: ClosedRange<Int64>?, ifMatch: String?,
                    sink: (UnsafeRawBufferPointer) throws -> Void) throws -> GetResult {
        lock.lock()
        count("get")
        guard let b = objects[bucket] else { lock.unlock(); throw noBucket("GetObject", bucket) }
        guard let o = b[key] else {
            lock.unlock()
            throw S3Error(kind: .http, operation: "GetObject", bucket: bucket, key: key, status: 404, code: "NoSuchKey", message: "no such key")
        }
        lock.unlock()
        if let m = ifMatch, m != o.etag {
            throw S3Error(kind: .http, operation: "GetObject", bucket: bucket, key: key, status: 412,
                          code: "PreconditionFailed", message: "If-Match failed")
        }
        let size = Int64(o.data.count)
        let r = range ?? 0...max(size - 1, 0)
        guard size == 0 || r.lowerBound < size else {
            throw S3Error(kind: .http, operation: "GetObject", bucket: bucket, key: key, status: 416,
                          code: "InvalidRange", message: "range not satisfiable")
        }
        let slice = size == 0 ? [] : Array(o.data[Int(r.lowerBound)...Int(min(r.upperBound, size - 1))])
        try slice.withUnsafeBytes { try sink($0) }
        return GetResult(status: range == nil ? 200 : 206, etag: o.etag, bytes: Int64(slice.count), objectSize: size)
    }
}
