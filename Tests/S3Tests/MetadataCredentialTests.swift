/// EC2 instance metadata (IMDSv2 and its IMDSv1 fallback) and container credentials, each
/// against a stub on 127.0.0.1 that speaks the real protocol. No test reaches 169.254.169.254:
/// every context either points IMDS at a stub or disables it.
import Foundation
import XCTest
@testable import S3

final class MetadataCredentialTests: XCTestCase {
    static let roleDocument = """
        {"Code":"Success","LastUpdated":"2026-12-07T20:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAIMDS",
         "SecretAccessKey":"imds-secret","Token":"imds-session-token","Expiration":"2030-01-01T00:00:00Z"}
        """

    /// An IMDS stub: `tokenStatus` answers the PUT; the GETs need the token unless it is 0.
    func imds(tokenStatus: Int, requireToken: Bool = true) throws -> StubHTTPServer {
        try StubHTTPServer { r in
            if r.method == "PUT" && r.path == "/latest/api/token" {
                guard r.headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600" else { return .text(400, "") }
                return tokenStatus == 200 ? .text(200, "IMDSTOKEN") : .text(tokenStatus, "")
            }
            if requireToken && tokenStatus == 200 && r.headers["x-aws-ec2-metadata-token"] != "IMDSTOKEN" {
                return .text(401, "")
            }
            switch (r.method, r.path) {
            case ("GET", "/latest/meta-data/iam/security-credentials/"): return .text(200, "my-role\n")
            case ("GET", "/latest/meta-data/iam/security-credentials/my-role"):
                return .text(200, Self.roleDocument, type: "application/json")
            default: return .text(404, "")
            }
        }
    }

    func context(_ env: [String: String]) -> CredentialContext {
        CredentialContext(environment: env, home: "/nonexistent-home")
    }

    // MARK: - IMDS

    func testIMDSv2TokenFlow() throws {
        let stub = try imds(tokenStatus: 200)
        let p = InstanceMetadataCredentialProvider(context: context(["AWS_EC2_METADATA_SERVICE_ENDPOINT": stub.url]))
        let c = try XCTUnwrap(p.load())
        XCTAssertEqual(c.accessKeyId, "ASIAIMDS")
        XCTAssertEqual(c.secretAccessKey, "imds-secret")
        XCTAssertEqual(c.sessionToken, "imds-session-token")
        XCTAssertEqual(c.expiration, Date(timeIntervalSince1970: 1_893_456_000))
        let reqs = stub.requests
        XCTAssertEqual(reqs.map(\.method), ["PUT", "GET", "GET"])
        XCTAssertEqual(reqs[1].headers["x-aws-ec2-metadata-token"], "IMDSTOKEN")
        XCTAssertEqual(reqs[2].headers["x-aws-ec2-metadata-token"], "IMDSTOKEN")
    }

    func testIMDSv1FallbackOn403404405() throws {
        for status in [403, 404, 405] {
            let stub = try imds(tokenStatus: status)
            let p = InstanceMetadataCredentialProvider(context: context(["AWS_EC2_METADATA_SERVICE_ENDPOINT": stub.url]))
            XCTAssertEqual(try p.load()?.accessKeyId, "ASIAIMDS", "PUT answered \(status)")
            XCTAssertNil(stub.requests.last?.headers["x-aws-ec2-metadata-token"])
        }
    }

    func testNoFallbackWhenV1Disabled() throws {
        let stub = try imds(tokenStatus: 405)
        let p = InstanceMetadataCredentialProvider(context: context(["AWS_EC2_METADATA_SERVICE_ENDPOINT": stub.url,
                                                                     "AWS_EC2_METADATA_V1_DISABLED": "TRUE"]))
        XCTAssertThrowsError(try p.load()) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .failed)
            XCTAssertTrue("\(e)".contains("AWS_EC2_METADATA_V1_DISABLED"), "\(e)")
        }
        XCTAssertEqual(stub.requests.count, 1, "no IMDSv1 GET after the refused PUT")
    }

    func testNoFallbackOnOtherTokenErrors() throws {
        for status in [400, 500] {
            let stub = try imds(tokenStatus: status)
            let p = InstanceMetadataCredentialProvider(context: context(["AWS_EC2_METADATA_SERVICE_ENDPOINT": stub.url]))
            XCTAssertThrowsError(try p.load(), "PUT answered \(status)") { e in
                XCTAssertTrue("\(e)".contains("HTTP \(status)"), "\(e)")
            }
            XCTAssertEqual(stub.requests.count, 1)
        }
    }

    func testDisabledSendsNothingAndSilenceIsNotConfigured() throws {
        let stub = try imds(tokenStatus: 200)
        let off = InstanceMetadataCredentialProvider(context: context(["AWS_EC2_METADATA_SERVICE_ENDPOINT": stub.url,
                                                                       "AWS_EC2_METADATA_DISABLED": "true"]))
        XCTAssertNil(try off.load())
        XCTAssertEqual(stub.requests.count, 0)
        // A port nothing listens on: not on EC2, so nil rather than an error.
        let closed = try StubHTTPServer { _ in .text(200, "") }
        let url = closed.url
        closed.stop()
        Thread.sleep(forTimeInterval: 0.1)
        let p = InstanceMetadataCredentialProvider(context: context(["AWS_EC2_METADATA_SERVICE_ENDPOINT": url]))
        XCTAssertNil(try p.load())
    }

    func testEndpointModes() throws {
        XCTAssertEqual(try InstanceMetadataCredentialProvider(context: context([:])).endpoint(), "http://169.254.169.254")
        XCTAssertEqual(try InstanceMetadataCredentialProvider(
            context: context(["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"])).endpoint(), "http://[fd00:ec2::254]")
        XCTAssertEqual(try InstanceMetadataCredentialProvider(
            context: context(["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6",
                              "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9/"])).endpoint(), "http://127.0.0.1:9")
        XCTAssertThrowsError(try InstanceMetadataCredentialProvider(
            context: context(["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv5"])).endpoint())
    }

    func testFailedRoleDocumentIsAnError() throws {
        let stub = try StubHTTPServer { r in
            if r.method == "PUT" { return .text(200, "T") }
            if r.path.hasSuffix("/security-credentials/") { return .text(200, "r") }
            return .text(200, #"{"Code":"AssumeRoleUnauthorizedAccess","Message":"no"}"#)
        }
        let p = InstanceMetadataCredentialProvider(context: context(["AWS_EC2_METADATA_SERVICE_ENDPOINT": stub.url]))
        XCTAssertThrowsError(try p.load()) { e in XCTAssertTrue("\(e)".contains("AssumeRoleUnauthorizedAccess"), "\(e)") }
    }

    // MARK: - Container

    static let containerDocument = """
        {"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"container-secret","Token":"container-token",
         "Expiration":"2030-01-01T00:00:00Z","RoleArn":"arn:aws:iam::123456789012:role/task"}
        """

    func containerStub() throws -> StubHTTPServer {
        try StubHTTPServer { r in
            r.path.hasPrefix("/creds") ? .text(200, Self.containerDocument, type: "application/json") : .text(404, "")
        }
    }

    func testFullURIWithTokenFileReadOnEveryLoad() throws {
        let stub = try containerStub()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("soak-ctr-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "first-token\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        let p = ContainerCredentialProvider(context: context([
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": stub.url + "/creds",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": dir + "/token",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "env-token"]))
        let c = try XCTUnwrap(p.load())
        XCTAssertEqual(c.accessKeyId, "ASIACONTAINER")
        XCTAssertEqual(c.sessionToken, "container-token")
        try "second-token".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        _ = try p.load()
        XCTAssertEqual(stub.requests.map { $0.headers["authorization"] }, ["first-token", "second-token"])
    }

    func testTokenFromEnvironmentAndRelativeURIWins() throws {
        let stub = try containerStub()
        let p = ContainerCredentialProvider(context: context([
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/creds/relative",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/full",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "env-token"]), relativeBase: stub.url)
        XCTAssertEqual(try p.load()?.accessKeyId, "ASIACONTAINER")
        XCTAssertEqual(stub.requests.first?.path, "/creds/relative")
        XCTAssertEqual(stub.requests.first?.headers["authorization"], "env-token")
        XCTAssertEqual(try ContainerCredentialProvider(context: context(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/x"]))
            .endpoint(), "http://169.254.170.2/v2/x")
    }

    func testFullURIHostRules() throws {
        func endpoint(_ url: String) throws -> String? {
            try ContainerCredentialProvider(context: context(["AWS_CONTAINER_CREDENTIALS_FULL_URI": url])).endpoint()
        }
        for ok in ["http://127.0.0.1:8080/c", "http://127.2.3.4/c", "http://localhost/c", "http://[::1]:80/c",
                   "http://169.254.170.2/c", "http://169.254.170.23/v1/credentials", "http://[fd00:ec2::23]/c",
                   "https://creds.example.com/c"] {
            XCTAssertEqual(try endpoint(ok), ok)
        }
        for bad in ["http://creds.example.com/c", "http://169.254.170.3/c", "http://10.0.0.1/c", "ftp://127.0.0.1/c",
                    "http://[fd00:ec2::24]/c"] {
            XCTAssertThrowsError(try endpoint(bad), bad) { e in
                XCTAssertEqual((e as? CredentialsError)?.kind, .invalidConfig)
                XCTAssertFalse("\(e)".contains("\n"))
            }
        }
    }

    func testClientErrorIsFinalServerErrorIsRetried() throws {
        let denied = try StubHTTPServer { _ in .text(403, #"{"Code":"AccessDenied","Message":"bad token"}"#) }
        let p = ContainerCredentialProvider(context: context(["AWS_CONTAINER_CREDENTIALS_FULL_URI": denied.url + "/c",
                                                              "AWS_CONTAINER_AUTHORIZATION_TOKEN": "sekrit-token"]),
                                            retryDelay: 0)
        XCTAssertThrowsError(try p.load()) { e in
            XCTAssertTrue("\(e)".contains("HTTP 403: AccessDenied"), "\(e)")
            XCTAssertFalse("\(e)".contains("sekrit-token"))
        }
        XCTAssertEqual(denied.requests.count, 1)
        let broken = try StubHTTPServer { _ in .text(500, "") }
        let q = ContainerCredentialProvider(context: context(["AWS_CONTAINER_CREDENTIALS_FULL_URI": broken.url + "/c"]),
                                            retryDelay: 0)
        XCTAssertThrowsError(try q.load())
        XCTAssertEqual(broken.requests.count, ContainerCredentialProvider.defaultAttempts)
    }

    func testExpiredOrMalformedAnswersAreRefused() throws {
        let stub = try StubHTTPServer { r in
            r.path == "/old"
                ? .text(200, #"{"AccessKeyId":"A","SecretAccessKey":"S","Token":"T","Expiration":"2001-01-01T00:00:00Z"}"#)
                : .text(200, "<html>captive portal</html>")
        }
        for path in ["/old", "/html"] {
            let p = ContainerCredentialProvider(context: context(["AWS_CONTAINER_CREDENTIALS_FULL_URI": stub.url + path]))
            XCTAssertThrowsError(try p.load(), path) { e in XCTAssertEqual((e as? CredentialsError)?.kind, .failed) }
        }
    }

    /// RELATIVE_URI is fixed to http://169.254.170.2, so the real address is tested: a thread
    /// moves into a network namespace of its own (unshare(CLONE_NEWNET) acts on the calling
    /// thread), gives its loopback 169.254.170.2, serves the stub there and loads from it.
    func testRelativeURIAtTheECSAgentAddressInANetworkNamespace() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip"),
              let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare") else {
            throw XCTSkip("needs root, ip(8) and unshare(2)")
        }
        typealias Unshare = @convention(c) (Int32) -> Int32
        let unshare = unsafeBitCast(sym, to: Unshare.self)
        let cloneNewNet: Int32 = 0x4000_0000
        final class Box: @unchecked Sendable { var result: Result<(Credentials?, [StubHTTPServer.Request]), Error>? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            box.result = Result {
                guard unshare(cloneNewNet) == 0 else { throw XCTSkip("unshare(CLONE_NEWNET) failed: errno \(errno)") }
                for args in [["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "169.254.170.2/32", "dev", "lo"]] {
                    let r = try ProcessCredentialProvider.run(args, environment: ["PATH": "/usr/sbin:/sbin:/usr/bin:/bin"],
                                                              timeout: 10, what: "test setup")
                    guard r.status == 0 else { throw XCTSkip("\(args.joined(separator: " ")) failed") }
                }
                let stub = try StubHTTPServer(host: "169.254.170.2", port: 80) { r in
                    r.path == "/v2/credentials/task-id" ? .text(200, Self.containerDocument) : .text(404, "")
                }
                defer { stub.stop() }
                let p = ContainerCredentialProvider(context: CredentialContext(
                    environment: ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/task-id",
                                  "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/never"],
                    home: "/nonexistent-home"))
                return (try p.load(), stub.requests)
            }
        }
        thread.start()
        done.wait()
        let (creds, requests) = try XCTUnwrap(box.result).get()
        XCTAssertEqual(creds?.accessKeyId, "ASIACONTAINER")
        XCTAssertEqual(requests.map(\.path), ["/v2/credentials/task-id"])
        XCTAssertEqual(requests.first?.headers["host"], "169.254.170.2")
    }
}
