/// What happens when S3 refuses keys the keeper still thinks good (`ExpiredToken` from a skewed
/// clock, `InvalidToken`, `TokenRefreshRequired`): the coordinator's store asks the keeper for
/// new keys now and signs the request once more; fixed keys are not retried; forced refreshes
/// are spaced; a worker's ExpiredToken is retryable and wakes the keeper.
import Foundation
import Logging
import XCTest
@testable import S3

final class CredentialRejectionTests: XCTestCase {
    typealias Clock = CredentialKeeperTests.Clock
    typealias FakeProvider = CredentialKeeperTests.FakeProvider

    static func s3Error(_ status: Int, _ code: String) -> StubHTTPServer.Response {
        .text(status, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(code)</Code>"
              + "<Message>refused by the stub</Message><RequestId>r</RequestId></Error>", type: "application/xml")
    }

    /// An S3 stub that refuses the keys in `refused` with `code` and answers a listing of one
    /// object to any other key.
    func s3(refusing refused: Set<String>, status: Int = 400, code: String = "ExpiredToken") throws -> StubHTTPServer {
        try StubHTTPServer { r in
            let auth = r.headers["authorization"] ?? ""
            let key = auth.range(of: "Credential=").map { String(auth[$0.upperBound...].prefix { $0 != "/" }) } ?? ""
            if refused.contains(key) { return Self.s3Error(status, code) }
            if r.method == "HEAD" {
                return StubHTTPServer.Response(status: 200, headers: [("Content-Length", "5"), ("ETag", "\"e\"")])
            }
            return .text(200, """
                <?xml version="1.0" encoding="UTF-8"?>
                <ListBucketResult><Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>
                <IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>5</Size><ETag>"e"</ETag></Contents>
                </ListBucketResult>
                """, type: "application/xml")
        }
    }

    func store(_ stub: StubHTTPServer, _ keeper: CredentialKeeper) throws -> CurlObjectStore {
        let endpoint = try S3Endpoint(url: stub.url, region: "us-east-1", addressing: .path)
        return try CurlObjectStore(builder: S3RequestBuilder(endpoint: endpoint, credentials: keeper.current),
                                   options: TransportOptions(), credentials: keeper)
    }

    func keys(_ stub: StubHTTPServer) -> [String] {
        stub.requests.map { r in
            let auth = r.headers["authorization"] ?? ""
            return auth.range(of: "Credential=").map { String(auth[$0.upperBound...].prefix { $0 != "/" }) } ?? ""
        }
    }

    func testExpiredTokenRefreshesNowAndSignsOnceMore() throws {
        let clock = Clock()
        // "A" still has 50 s by the keeper's clock: no refresh is due when S3 refuses it.
        let provider = FakeProvider(["B"], clock: clock)
        let keeper = CredentialKeeper(credentials: Credentials(accessKeyId: "A", secretAccessKey: "s", sessionToken: "t",
                                                               expiration: clock.now + 50),
                                      provider: provider, logger: Logger(label: "test"), now: { clock.now })
        clock.advance(to: clock.now + 20)  // past minForcedInterval since "A" was installed
        final class Pushed: @unchecked Sendable {
            let lock = NSLock()
            var keys: [String] = []
        }
        let pushed = Pushed()
        keeper.subscribe { c in pushed.lock.withLock { pushed.keys.append(c.accessKeyId) } }
        let stub = try s3(refusing: ["A"])
        let s = try store(stub, keeper)
        let page = try s.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 1000)
        XCTAssertEqual(page.objects.map(\.key), ["k"])
        XCTAssertEqual(keys(stub), ["A", "B"], "refused with A, signed again with B")
        XCTAssertEqual(provider.calls, 1)
        XCTAssertEqual(keeper.current.accessKeyId, "B")
        XCTAssertEqual(pushed.lock.withLock { pushed.keys }, ["A", "B"], "subscribers (the workers) get B too")
        // Later requests sign with B directly.
        _ = try s.head(bucket: "b", key: "k")
        XCTAssertEqual(keys(stub), ["A", "B", "B"])
    }

    func list(_ s: CurlObjectStore) throws -> [String] {
        try s.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 1000).objects.map(\.key)
    }

    func keeper(_ clock: Clock, _ provider: FakeProvider) -> CredentialKeeper {
        let k = CredentialKeeper(credentials: Credentials(accessKeyId: "A", secretAccessKey: "s", sessionToken: "t",
                                                          expiration: clock.now + 3600),
                                 provider: provider, logger: Logger(label: "test"), now: { clock.now })
        clock.advance(to: clock.now + 60)  // past minForcedInterval since "A" was installed
        return k
    }

    /// InvalidToken and TokenRefreshRequired too; and a HEAD's bodyless 400 (S3 sends no error
    /// document with a HEAD), but not a HEAD's bodyless 403 (a missing key without ListBucket).
    func testInvalidTokenTokenRefreshRequiredAndBodylessHeadAlsoResign() throws {
        for (status, code) in [(403, "InvalidToken"), (400, "TokenRefreshRequired")] {
            let clock = Clock()
            let k = keeper(clock, FakeProvider(["B"], clock: clock))
            let stub = try s3(refusing: ["A"], status: status, code: code)
            XCTAssertEqual(try list(store(stub, k)), ["k"], code)
            XCTAssertEqual(keys(stub), ["A", "B"], code)
        }
        let clock = Clock()
        let k = keeper(clock, FakeProvider(["B"], clock: clock))
        let stub = try s3(refusing: ["A"], status: 400, code: "ExpiredToken")
        XCTAssertNoThrow(try store(stub, k).head(bucket: "b", key: "k"))
        XCTAssertEqual(keys(stub), ["A", "B"])
        let denied = try s3(refusing: ["B"], status: 403, code: "AccessDenied")
        XCTAssertThrowsError(try store(denied, k).head(bucket: "b", key: "k"))
        XCTAssertEqual(keys(denied), ["B"])
    }

    func testResignsOnceOnlyAndNeverForFixedKeys() throws {
        // New keys refused as well: one retry, then the error, and no second refresh.
        let clock = Clock()
        let provider = FakeProvider(["B", "C"], clock: clock)
        let k = keeper(clock, provider)
        let stub = try s3(refusing: ["A", "B", "C"])
        let s = try store(stub, k)
        XCTAssertThrowsError(try list(s)) { e in
            XCTAssertEqual((e as? S3Error)?.code, "ExpiredToken")
        }
        XCTAssertEqual(keys(stub), ["A", "B"])
        // The next request within minForcedInterval of that refresh does not call the source again.
        XCTAssertThrowsError(try list(s))
        XCTAssertEqual(keys(stub), ["A", "B", "B"])
        XCTAssertEqual(provider.calls, 1)

        // Keys from the environment (no provider to refresh): no retry at all.
        let fixedStub = try s3(refusing: ["F"])
        let fixed = CredentialKeeper(fixed: Credentials(accessKeyId: "F", secretAccessKey: "s", sessionToken: "t"))
        XCTAssertThrowsError(try list(store(fixedStub, fixed)))
        XCTAssertEqual(keys(fixedStub), ["F"])
    }

    func testRequestRefreshWakesTheTimerThreadAndIsSpaced() throws {
        let clock = Clock()
        let provider = FakeProvider(["B", "C"], clock: clock)
        let keeper = CredentialKeeper(credentials: Credentials(accessKeyId: "A", secretAccessKey: "s", sessionToken: "t",
                                                               expiration: clock.now + 3600),
                                      provider: provider, logger: Logger(label: "test"), now: { clock.now })
        keeper.start()
        defer { keeper.stop() }
        keeper.requestRefresh()  // "A" was installed just now: too soon, ignored
        usleep(200_000)
        XCTAssertEqual(provider.calls, 0)
        clock.advance(to: clock.now + CredentialKeeper.minForcedInterval + 1)
        keeper.requestRefresh()
        let deadline = Date().addingTimeInterval(10)
        while keeper.current.accessKeyId != "B" && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(keeper.current.accessKeyId, "B")
        keeper.requestRefresh()  // right after B: ignored
        usleep(200_000)
        XCTAssertEqual(provider.calls, 1)
    }

    func testExpiredTokenIsRetryableInvalidTokenIsNot() {
        func err(_ status: Int, _ code: String) -> S3Error {
            S3Error(kind: .http, operation: "GetObject", bucket: "b", key: "k", status: status, code: code, message: "m")
        }
        XCTAssertTrue(err(400, "ExpiredToken").isRetryable)
        XCTAssertTrue(err(400, "TokenRefreshRequired").isRetryable)
        XCTAssertFalse(err(403, "InvalidToken").isRetryable)
        XCTAssertTrue(err(403, "InvalidToken").isCredentialRejection)
        XCTAssertFalse(err(403, "AccessDenied").isCredentialRejection)
        XCTAssertFalse(err(403, "SignatureDoesNotMatch").isRetryable)
    }
}
