/// STS calls retry transient failures (5xx, throttling, no answer) a few times with the
/// project's RetryPolicy, against a stub answering as STS does; other errors are not retried,
/// and the last failure is one line naming the source and the attempts.
import Foundation
import XCTest
@testable import S3

final class STSRetryTests: XCTestCase {
    /// An STS stub answering each call from `script` (a status; the last repeats), success as
    /// real STS answers.
    func sts(_ script: [Int]) throws -> StubHTTPServer {
        final class Counter: @unchecked Sendable {
            let lock = NSLock()
            var n = 0
            func next() -> Int { lock.withLock { defer { n += 1 }; return n } }
        }
        let counter = Counter()
        return try StubHTTPServer { _ in
            let status = script[min(counter.next(), script.count - 1)]
            switch status {
            case 200:
                return .text(200, STSCredentialTests.success("AssumeRoleWithWebIdentity", key: "ASIAWEB"), type: "text/xml")
            case 400:
                return .text(400, STSCredentialTests.accessDenied.replacingOccurrences(of: "AccessDenied",
                                                                                       with: "InvalidIdentityToken"),
                             type: "text/xml")
            default:
                return .text(status, STSCredentialTests.accessDenied.replacingOccurrences(of: "AccessDenied", with: "InternalFailure"),
                             type: "text/xml")
            }
        }
    }

    func webIdentity(_ stub: StubHTTPServer, home: String) throws -> WebIdentityCredentialProvider {
        try "good-token".write(toFile: home + "/token", atomically: true, encoding: .utf8)
        let context = CredentialContext(environment: ["AWS_ENDPOINT_URL_STS": stub.url,
                                                      "AWS_WEB_IDENTITY_TOKEN_FILE": home + "/token",
                                                      "AWS_ROLE_ARN": "arn:aws:iam::1:role/web"], home: home)
        return WebIdentityCredentialProvider.fromEnvironment(context)
    }

    func testSTSRetriesTransientFailures() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("soak-stsretry-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: home) }

        let flaky = try sts([500, 503, 200])
        XCTAssertEqual(try webIdentity(flaky, home: home).load()?.accessKeyId, "ASIAWEB")
        XCTAssertEqual(flaky.requests.count, 3)

        let throttled = try sts([400, 200])  // InvalidIdentityToken: not transient
        XCTAssertThrowsError(try webIdentity(throttled, home: home).load()) { e in
            XCTAssertTrue("\(e)".contains("HTTP 400: InvalidIdentityToken"), "\(e)")
            XCTAssertFalse("\(e)".contains("attempts"), "\(e)")
        }
        XCTAssertEqual(throttled.requests.count, 1)

        let down = try sts([500])
        XCTAssertThrowsError(try webIdentity(down, home: home).load()) { e in
            let text = "\(e)"
            XCTAssertTrue(text.hasPrefix("web identity (AWS_WEB_IDENTITY_TOKEN_FILE): STS AssumeRoleWithWebIdentity "
                                         + "answered HTTP 500: InternalFailure"), text)
            XCTAssertTrue(text.hasSuffix("(after \(STSClient.retry.maxAttempts) attempts)"), text)
            XCTAssertFalse(text.contains("\n") || text.contains("good-token"), text)
        }
        XCTAssertEqual(down.requests.count, STSClient.retry.maxAttempts)

        // No answer at all (nothing listens): retried, then one line naming the source.
        down.stop()
        XCTAssertThrowsError(try webIdentity(down, home: home).load()) { e in
            XCTAssertTrue("\(e)".contains("STS AssumeRoleWithWebIdentity failed: ")
                          && "\(e)".contains("(after \(STSClient.retry.maxAttempts) attempts)"), "\(e)")
        }
    }

    func testTransientClassification() {
        XCTAssertTrue(STSClient.isTransient(status: 500, code: nil))
        XCTAssertTrue(STSClient.isTransient(status: 400, code: "Throttling"))
        XCTAssertTrue(STSClient.isTransient(status: 400, code: "IDPCommunicationError"))
        XCTAssertTrue(STSClient.isTransient(status: 429, code: nil))
        XCTAssertFalse(STSClient.isTransient(status: 403, code: "AccessDenied"))
        XCTAssertFalse(STSClient.isTransient(status: 400, code: "InvalidIdentityToken"))
    }
}
