/// The real S3 client: signed requests over one reused libcurl easy handle.
///
/// One instance per thread (the handle keeps its connection alive between calls). Every
/// response goes through `ResponseCheck`, the same classification the worker processes use,
/// so an error reads the same whichever path hit it.
import Foundation
import SoakCore

public final class CurlObjectStore: ObjectStore, @unchecked Sendable {  // @unchecked: lends callers' sinks to the handle under `lock`
    // The transfer and `builder` are guarded by `lock`: one request at a time per instance. A
    // Mutex refuses it (tried): a caller's non-Sendable sink cannot go into the guarded handle.
    private var builder: S3RequestBuilder
    private let options: TransportOptions
    private let transfer: CurlTransfer
    private let lock = NSLock()
    /// Where refreshed credentials come from; nil signs with the builder's own for good.
    private let keys: CredentialKeeper?

    public init(builder: S3RequestBuilder, options: TransportOptions, credentials: CredentialKeeper? = nil) throws {
        self.builder = builder
        self.options = options
        self.keys = credentials
        self.transfer = try CurlTransfer()
    }

    /// The builder (called under `lock`) with the keeper's current credentials: each request is
    /// signed with the keys valid when it starts (the keeper's lock makes the swap thread-safe).
    private var signing: S3RequestBuilder {
        guard let keys else { return builder }
        var b = builder
        b.credentials = keys.current
        return b
    }

    public func listPage(bucket: String, prefix: String, delimiter: String?, continuationToken: String?,
                         maxKeys: Int) throws -> ListPage {
        // encoding-type=url: keys with characters XML 1.0 cannot carry (U+0001...) arrive
        // percent-encoded instead of breaking the whole page; the parser decodes them.
        var body = Data()
        try run("ListObjectsV2", bucket: bucket, key: nil, method: "GET", {
            $0.listObjectsV2(bucket: bucket, prefix: prefix, delimiter: delimiter,
                             continuationToken: continuationToken, maxKeys: maxKeys, encodingTypeURL: true)
        }) { body.append(contentsOf: $0) }
        do {
            return try ListObjectsParser.parse(body)
        } catch {
            throw S3Error(kind: .invalidResponse, operation: "ListObjectsV2", bucket: bucket,
                          message: "unparseable listing: \(error)")
        }
    }

    public func head(bucket: String, key: String) throws -> ObjectInfo {
        let head = try run("HeadObject", bucket: bucket, key: key, method: "HEAD",
                           { $0.headObject(bucket: bucket, key: key) }) { _ in }
        return ObjectInfo(key: key, size: head.contentLength ?? 0, etag: head.etag ?? "")
    }

    public func get(bucket: String, key: String, range: ClosedRange<Int64>?, ifMatch: String?,
                    sink: (UnsafeRawBufferPointer) throws -> Void) throws -> GetResult {
        return try withoutActuallyEscaping(sink) { sink in
            let head = try run("GetObject", bucket: bucket, key: key, method: "GET",
                               { $0.getObject(bucket: bucket, key: key, range: range, ifMatch: ifMatch) },
                               range: range, sink: sink)
            try ResponseCheck.checkRange(head, requested: range, bodyBytes: transferBytes,
                                         operation: "GetObject", bucket: bucket, key: key)
            return GetResult(status: head.status, etag: head.etag, bytes: transferBytes,
                             objectSize: head.contentRange?.total ?? head.contentLength)
        }
    }

    private var transferBytes: Int64 { transfer.bodyBytes }

    /// The builder requests are signed with now: the configured one, or the one for the bucket's
    /// real region once a response said where the bucket is.
    public var currentBuilder: S3RequestBuilder {
        lock.lock(); defer { lock.unlock() }
        return builder
    }

    /// Asks where `bucket` lives (HEAD bucket, whose `x-amz-bucket-region` S3 sends even with a
    /// 301 or 403) and signs for that region from then on. For AWS endpoints only: a custom
    /// endpoint keeps its region (unless a later response redirects, see `run`). Never fails:
    /// without an answer the configured region stays, and the listing reports any real problem.
    /// Returns the builder to hand to workers.
    @discardableResult
    public func discoverRegion(bucket: String, evenForCustomEndpoint: Bool = false) -> S3RequestBuilder {
        lock.lock(); defer { lock.unlock() }
        guard !builder.endpoint.isCustom || evenForCustomEndpoint else { return builder }
        let req = signing.request(method: "HEAD", bucket: bucket, key: nil)
        guard (try? transfer.prepare(method: "HEAD", url: req.url, headers: req.headers, options: options)) != nil
        else { return builder }
        transfer.expectedRange = nil
        transfer.sink = { _ in }
        if transfer.perform() == 0, let r = transfer.head.bucketRegion, r != builder.endpoint.region,
           let moved = try? builder.inRegion(r) {
            builder = moved
        }
        return builder
    }

    @discardableResult
    private func run(_ op: String, bucket: String, key: String?, method: String,
                     _ make: (S3RequestBuilder) -> SignedRequest, range: ClosedRange<Int64>? = nil,
                     sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws -> ResponseHead {
        lock.lock(); defer { lock.unlock() }
        var resigned = false
        while true {
            let signer = signing
            let rc = try perform(method: method, make, signer: signer, range: range, sink: sink)
            guard var e = ResponseCheck.error(for: transfer, curlCode: rc, operation: op, bucket: bucket, key: key) else {
                return transfer.head
            }
            // Keys S3 calls expired or invalid before the keeper thought so (a skewed clock, an
            // early revocation): refresh now and sign this request once more with the new ones.
            // A HEAD's error has no body to name its code; its 400 with a signature that was
            // good otherwise is an expired token in practice (regions are handled above).
            let bodylessExpiry = method == "HEAD" && e.kind == .http && e.status == 400 && e.code == nil
            if !resigned, e.isCredentialRejection || bodylessExpiry, let keys,
               let fresh = keys.refreshNow(rejected: signer.credentials.accessKeyId),
               fresh.accessKeyId != signer.credentials.accessKeyId {
                resigned = true
                continue
            }
            // Say which server could not be reached.
            if case .transport = e.kind { e.message += " (\(builder.endpoint.urlString))" }
            throw e
        }
    }

    /// One request (and one more at most, signed again for the region a response names: a
    /// bucket found elsewhere; every later request then uses that region directly). Caller holds
    /// `lock`. Returns libcurl's code.
    private func perform(method: String, _ make: (S3RequestBuilder) -> SignedRequest, signer first: S3RequestBuilder,
                         range: ClosedRange<Int64>?, sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws -> Int32 {
        var rc: Int32 = 0
        var signer = first
        for attempt in 0..<2 {
            let req = make(signer)
            try transfer.prepare(method: method, url: req.url, headers: req.headers, options: options)
            transfer.expectedRange = range
            transfer.sink = sink
            rc = transfer.perform()
            transfer.sink = { _ in }
            guard attempt == 0, rc == 0,
                  let region = BucketRegion.redirect(status: transfer.head.status, headerRegion: transfer.head.bucketRegion,
                                                     body: S3ErrorBody.parse(Data(transfer.errorBody)),
                                                     current: builder.endpoint.region),
                  let moved = try? builder.inRegion(region) else { break }
            builder = moved
            signer = signing
        }
        return rc
    }
}

/// Turns a finished transfer into success or a typed `S3Error`. Shared by the coordinator's
/// easy requests and the workers' multi transfers.
public enum ResponseCheck {
    public static func error(for t: CurlTransfer, curlCode: Int32, operation: String, bucket: String,
                             key: String?) -> S3Error? {
        if let p = t.headProblem {
            return S3Error(kind: .invalidResponse, operation: operation, bucket: bucket, key: key,
                           status: t.head.status, message: p)
        }
        if let sinkError = t.sinkError {
            let errno: Int32 = (sinkError as? LocalIOError)?.errno ?? 5
            return S3Error(kind: .localIO(errno: errno), operation: operation, bucket: bucket, key: key,
                           message: "writing the body failed: \(sinkError)")
        }
        let status = t.head.status
        if curlCode != 0 {
            // 28 = operation timed out: with a low-speed limit set this is a stall.
            let kind: S3Error.Kind = curlCode == 28 && status != 0 ? .stalled : .transport(curlCode: curlCode)
            return S3Error(kind: kind, operation: operation, bucket: bucket, key: key, status: 0,
                           message: CurlTransfer.describe(code: curlCode))
        }
        if status >= 200 && status < 300 { return nil }
        let body = S3ErrorBody.parse(Data(t.errorBody))
        var message = body?.message ?? ""
        if message.isEmpty {
            switch status {
            case 404: message = key == nil ? "bucket not found" : "no such key"
            case 403: message = "access denied (check credentials)"
            case 412: message = "object changed since it was listed (If-Match failed)"
            case 304: message = "not modified"
            default: message = "unexpected response"
            }
        }
        return S3Error(kind: .http, operation: operation, bucket: bucket, key: key, status: status,
                       code: body?.code, message: message, retryAfter: t.head.retryAfter)
    }

    /// Why a response head does not answer a GET of range `r`, or nil if it does: a 206 must
    /// carry exactly that range (cut at the object's end), a 200 (Range ignored) must be the
    /// whole object from byte 0 and no longer than asked.
    public static func rangeProblem(_ head: ResponseHead, requested r: ClosedRange<Int64>) -> String? {
        let span = r.upperBound - r.lowerBound  // length − 1: no overflow for any range from ≥ 0
        switch head.status {
        case 206:
            guard let cr = head.contentRange else { return "206 response without a Content-Range" }
            let end = cr.total.map { min(r.upperBound, $0 - 1) } ?? r.upperBound
            guard cr.start == r.lowerBound, cr.end == end else {
                return "Content-Range bytes \(cr.start)-\(cr.end) does not match the requested range \(r.lowerBound)-\(r.upperBound)"
            }
            if let len = head.contentLength, len != cr.end - cr.start + 1 {
                return "Content-Length \(len) does not match Content-Range bytes \(cr.start)-\(cr.end)"
            }
        case 200:
            guard r.lowerBound == 0 else { return "server ignored the Range header" }
            if let len = head.contentLength, len > 0, len - 1 > span {
                return "server ignored the Range header (\(len) bytes for a range of \(span) + 1)"
            }
        default:
            break
        }
        return nil
    }

    /// A ranged GET must answer 206 with exactly the requested range, and deliver all of it.
    public static func checkRange(_ head: ResponseHead, requested: ClosedRange<Int64>?, bodyBytes: Int64,
                                  operation: String, bucket: String, key: String) throws {
        if let r = requested {
            if let p = rangeProblem(head, requested: r) {
                throw S3Error(kind: .invalidResponse, operation: operation, bucket: bucket, key: key,
                              status: head.status, message: p)
            }
            if head.status == 206, let cr = head.contentRange, bodyBytes < cr.end - cr.start + 1 {
                let expect = cr.end - cr.start + 1
                throw S3Error(kind: .shortBody(expected: expect, got: bodyBytes), operation: operation,
                              bucket: bucket, key: key, status: head.status,
                              message: "body ended after \(bodyBytes) of \(expect) bytes")
            }
        }
        if let len = head.contentLength, head.status == 200 || head.status == 206, bodyBytes < len {
            throw S3Error(kind: .shortBody(expected: len, got: bodyBytes), operation: operation, bucket: bucket,
                          key: key, status: head.status, message: "body ended after \(bodyBytes) of \(len) bytes")
        }
    }
}

