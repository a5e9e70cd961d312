import Foundation
import Logging
import S3
import SoakCore

/// The S3 checks of `soak doctor`: the credential source, the region, the endpoint (latency and
/// clock skew) and ListBucket on the prefix. Each request is one attempt bounded by
/// `requestTimeoutMs`, connection included, so an endpoint that never answers fails in bounded time.
struct DoctorS3 {
    /// Long enough for a distant region's TLS handshake, short enough that a dead endpoint
    /// fails while the user still waits for the answer.
    static let requestTimeoutMs = 10_000
    /// S3's error codes that mean the keys themselves were refused.
    static let refusedKeyCodes: Set<String> = ["InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                                               "TokenRefreshRequired", "InvalidClientTokenId"]

    let uri: S3URI
    let s3: S3Options
    let env: [String: String]
    let transport: TransportOptions

    /// What one request brought back.
    struct Response {
        var curlCode: Int32
        var transfer: CurlTransfer
        var body: Data
        var seconds: Double
        var sentAt: Date
        var receivedAt: Date
    }

    /// The four lines: credentials, region, endpoint, list. Throws only for a malformed command
    /// line (endpoint URL, addressing, CA bundle, request payer): those exit 2 like elsewhere.
    func run() throws -> [DoctorCheck] {
        let home = env["HOME"] ?? NSHomeDirectory()
        let client = try s3.clientSettings(env: env)
        let resolved = RegionResolver.resolveWithSource(flag: s3.region, environment: env, home: home, profile: s3.profile)
        let endpoint = try S3Endpoint(url: client.endpointURL, region: resolved.region, addressing: client.addressing)
        var region = DoctorCheck.ok("region", "\(resolved.region) (from \(resolved.source))")

        var credentials: DoctorCheck
        var builder = S3RequestBuilder.anonymous(endpoint: endpoint, requestPayer: s3.requestPayer)
        var source = "anonymous"
        if s3.noSignRequest {
            credentials = .ok("credentials", "none: anonymous requests (--no-sign-request)")
        } else {
            do {
                let found = try CredentialKeeper.resolve(environment: env, home: home, profile: s3.profile,
                                                         region: resolved.source == "default" ? nil : resolved.region,
                                                         logger: Logger(label: "soak"))
                source = found.source
                credentials = .ok("credentials", "from \(found.source)")
                builder = S3RequestBuilder(endpoint: endpoint, credentials: found.keeper.current, requestPayer: s3.requestPayer)
            } catch let e as CredentialsError {
                credentials = .fail("credentials", e.message)
            }
        }

        // HEAD bucket: any HTTP answer shows the endpoint works; its Date gives the skew, and on
        // AWS its x-amz-bucket-region says where the bucket lives.
        let head = try perform(builder.request(method: "HEAD", bucket: uri.bucket, key: nil))
        guard head.curlCode == 0 else {
            let why = CurlTransfer.describe(code: head.curlCode)
            return [credentials, region,
                    .fail("endpoint", "\(endpoint.urlString) does not answer: \(why) (after \(String(format: "%.1f", head.seconds)) s)"),
                    .warn("list", "not checked: the endpoint does not answer")]
        }
        let skew = DoctorRules.skew(DoctorRules.clockSkew(serverDate: head.transfer.head.date,
                                                          sentAt: head.sentAt, receivedAt: head.receivedAt))
        let answer = "\(endpoint.urlString) answers in \(Int((head.seconds * 1000).rounded())) ms (HTTP \(head.transfer.head.status) to HEAD bucket); "
        let endpointCheck = DoctorCheck(status: skew.0, name: "endpoint", detail: answer + skew.1)
        if !endpoint.isCustom, let r = head.transfer.head.bucketRegion, r != endpoint.region, let moved = try? builder.inRegion(r) {
            region = .warn("region", "\(resolved.region) (from \(resolved.source)), but bucket \(uri.bucket) is in \(r): "
                           + "soak follows it after one extra request; pass --region \(r)")
            builder = moved
        }

        guard credentials.status != .fail else {
            return [credentials, region, endpointCheck, .warn("list", "not checked: no credentials")]
        }
        let list = try perform(builder.listObjectsV2(bucket: uri.bucket, prefix: uri.prefix, maxKeys: 1, encodingTypeURL: true))
        guard let error = ResponseCheck.error(for: list.transfer, curlCode: list.curlCode, operation: "ListObjectsV2",
                                              bucket: uri.bucket, key: nil) else {
            return [credentials, region, endpointCheck, Self.listed(list.body, uri: uri)]
        }
        if let code = error.code, Self.refusedKeyCodes.contains(code) {
            credentials = .fail("credentials", "from \(source), refused by \(endpoint.urlString): \(code): \(error.message)")
            return [credentials, region, endpointCheck, .warn("list", "not checked: the credentials were refused")]
        }
        return [credentials, region, endpointCheck, Self.listFailure(error, uri: uri, endpoint: endpoint.urlString)]
    }

    /// The list line of a ListObjectsV2 that succeeded: allowed, and whether anything is there.
    static func listed(_ body: Data, uri: S3URI) -> DoctorCheck {
        guard let page = try? ListObjectsParser.parse(body) else {
            return .fail("list", "ListObjectsV2 on \(uri) answered 200 with an unparseable body")
        }
        if page.objects.isEmpty && page.commonPrefixes.isEmpty {
            return .warn("list", "ListBucket allowed, but nothing under \(uri): check the prefix")
        }
        return .ok("list", "ListBucket allowed on \(uri)")
    }

    /// The list line of a ListObjectsV2 that failed, in the words that say what to fix.
    static func listFailure(_ e: S3Error, uri: S3URI, endpoint: String) -> DoctorCheck {
        if e.kind == .http && (e.code == "NoSuchBucket" || (e.status == 404 && e.code == nil)) {
            return .fail("list", "bucket \(uri.bucket) does not exist at \(endpoint)")
        }
        if e.kind == .http && (e.code == "AccessDenied" || e.status == 403) {
            return .fail("list", "access denied: no s3:ListBucket permission on \(uri) (\(e.code ?? "HTTP 403"): \(e.message))")
        }
        return .fail("list", e.description)
    }

    /// One attempt of `request`, bounded by `requestTimeoutMs`; a transfer that cannot be set
    /// up counts as an unanswered request. Throws only when libcurl has no handle to give.
    func perform(_ request: SignedRequest) throws -> Response {
        let sentAt = Date(), t0 = MonotonicTime.now()
        final class Sink { var data = Data() }
        let sink = Sink()
        let t = try CurlTransfer()
        do {
            try t.prepare(method: request.method, url: request.url, headers: request.headers, options: transport)
            try t.setTimeout(milliseconds: Self.requestTimeoutMs)
        } catch {
            return Response(curlCode: (error as? CurlError)?.code ?? 2, transfer: t, body: Data(),
                            seconds: 0, sentAt: sentAt, receivedAt: Date())
        }
        t.sink = { sink.data.append(contentsOf: $0) }
        let rc = t.perform()
        t.sink = { _ in }
        return Response(curlCode: rc, transfer: t, body: sink.data, seconds: MonotonicTime.now() - t0,
                        sentAt: sentAt, receivedAt: Date())
    }
}
