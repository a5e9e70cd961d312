/// The S3 client layer.
///
/// Everything above this module talks to `ObjectStore`, never to libcurl, so logic is tested
/// against `MemoryObjectStore` (and `FaultInjectingStore`, both in the SoakTestSupport test
/// target). `CurlObjectStore` is the real client: SigV4-signed requests over one libcurl easy
/// handle (connection reused). Bulk ranged GETs do not go through here: worker processes drive
/// their own libcurl multi handle with `S3RequestBuilder`, so both paths sign and address
/// requests identically.
import Foundation

/// One object as a listing or HEAD reports it.
public struct ObjectInfo: Sendable, Hashable, Codable {
    public var key: String
    public var size: Int64
    /// The ETag without surrounding quotes, e.g. `9e107d9d372bb6826bd81d3542a419d6` or `…-3`.
    public var etag: String
    /// Seconds since 1970, if known.
    public var lastModified: Double?

    public init(key: String, size: Int64, etag: String, lastModified: Double? = nil) {
        self.key = key; self.size = size; self.etag = etag; self.lastModified = lastModified
    }
}

/// One page of ListObjectsV2.
public struct ListPage: Sendable, Equatable {
    public var objects: [ObjectInfo]
    public var commonPrefixes: [String]
    public var isTruncated: Bool
    public var nextContinuationToken: String?

    public init(objects: [ObjectInfo] = [], commonPrefixes: [String] = [], isTruncated: Bool = false,
                nextContinuationToken: String? = nil) {
        self.objects = objects; self.commonPrefixes = commonPrefixes
        self.isTruncated = isTruncated; self.nextContinuationToken = nextContinuationToken
    }
}

/// What a GET returned besides the bytes.
public struct GetResult: Sendable, Equatable {
    public var status: Int
    public var etag: String?
    public var bytes: Int64
    /// Total object size from Content-Range (or Content-Length for a 200).
    public var objectSize: Int64?
    public init(status: Int, etag: String?, bytes: Int64, objectSize: Int64?) {
        self.status = status; self.etag = etag; self.bytes = bytes; self.objectSize = objectSize
    }
}

/// The S3 operations soak needs. Implementations are synchronous and thread-safe per call site
/// (one instance per thread for `CurlObjectStore`).
public protocol ObjectStore: Sendable {
    func listPage(bucket: String, prefix: String, delimiter: String?, continuationToken: String?,
                  maxKeys: Int) throws -> ListPage
    func head(bucket: String, key: String) throws -> ObjectInfo
    /// Streams bytes `range` (inclusive, nil = whole object) to `sink` as they arrive.
    /// With `ifMatch`, a changed object fails with HTTP 412.
    func get(bucket: String, key: String, range: ClosedRange<Int64>?, ifMatch: String?,
             sink: (UnsafeRawBufferPointer) throws -> Void) throws -> GetResult
}

extension ObjectStore {
    /// Every page under `prefix` in order, following continuation tokens; a truncated page
    /// without a new token is refused (it would loop forever). `fetch` wraps each page request
    /// (callers add retries there). `body` returns false to stop early; the result says whether
    /// the listing was complete. With `firstPageSize`, pages start that small and grow four-fold
    /// up to `pageSize`, so the first keys arrive sooner.
    @discardableResult
    public func listPages(bucket: String, prefix: String, delimiter: String? = nil, pageSize: Int = 1000,
                          firstPageSize: Int? = nil,
                          fetch: (() throws -> ListPage) throws -> ListPage = { try $0() },
                          _ body: (ListPage) throws -> Bool) throws -> Bool {
        var token: String? = nil
        var size = min(pageSize, max(1, firstPageSize ?? pageSize))
        repeat {
            let current = token, maxKeys = size
            let page = try fetch {
                try listPage(bucket: bucket, prefix: prefix, delimiter: delimiter, continuationToken: current, maxKeys: maxKeys)
            }
            size = min(pageSize, size * 4)
            guard try body(page) else { return false }
            if page.isTruncated {
                guard let next = page.nextContinuationToken, next != token else {
                    throw S3Error(kind: .invalidResponse, operation: "ListObjectsV2", bucket: bucket,
                                  message: "truncated listing without a new continuation token")
                }
                token = next
            } else {
                token = nil
            }
        } while token != nil
        return true
    }

    /// Every object under `prefix`, following continuation tokens.
    public func listAll(bucket: String, prefix: String, pageSize: Int = 1000,
                        _ body: (ObjectInfo) throws -> Void) throws {
        try listPages(bucket: bucket, prefix: prefix, pageSize: pageSize) { page in
            for o in page.objects { try body(o) }
            return true
        }
    }
}
