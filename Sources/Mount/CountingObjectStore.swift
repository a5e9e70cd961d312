/// An `ObjectStore` that counts the coordinator's own S3 requests (listings, HEADs, GETs) by
/// operation and outcome into shared `RequestCounts`, for `soak_s3_requests_total`.
import Engine
import Foundation
import S3
import Synchronization

/// Requests by operation, then by `RequestOutcome.label`. Thread-safe.
public final class RequestCounts: Sendable {
    private let counts = Mutex<[String: [String: Int]]>([:])

    public init() {}

    func add(_ operation: String, _ error: Error?) {
        let label = error.map { ($0 as? S3Error).map { RequestOutcome.label($0) } ?? "error" } ?? "ok"
        counts.withLock { $0[operation, default: [:]][label, default: 0] += 1 }
    }

    public var snapshot: [String: [String: Int]] { counts.withLock { $0 } }
}

struct CountingObjectStore: ObjectStore {
    let base: ObjectStore
    let counts: RequestCounts

    private func counted<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        do {
            let r = try body()
            counts.add(operation, nil)
            return r
        } catch {
            counts.add(operation, error)
            throw error
        }
    }

    func listPage(bucket: String, prefix: String, delimiter: String?, continuationToken: String?,
                  maxKeys: Int) throws -> ListPage {
        try counted("ListObjectsV2") {
            try base.listPage(bucket: bucket, prefix: prefix, delimiter: delimiter, continuationToken: continuationToken,
                              maxKeys: maxKeys)
        }
    }

    func head(bucket: String, key: String) throws -> ObjectInfo {
        try counted("HeadObject") { try base.head(bucket: bucket, key: key) }
    }

    func get(bucket: String, key: String, range: ClosedRange<Int64>?, ifMatch: String?,
             sink: (UnsafeRawBufferPointer) throws -> Void) throws -> GetResult {
        try counted("GetObject") { try base.get(bucket: bucket, key: key, range: range, ifMatch: ifMatch, sink: sink) }
    }
}
