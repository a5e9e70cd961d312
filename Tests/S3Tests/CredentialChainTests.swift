/// The default chain's order, `--profile`, and the one-line message when nothing is found.
import Foundation
import XCTest
@testable import S3

final class CredentialChainTests: XCTestCase {
    var home = ""

    override func setUpWithError() throws {
        home = FileManager.default.temporaryDirectory.appendingPathComponent("soak-chain-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: home + "/.aws", withIntermediateDirectories: true)
        try "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n[other]\n"
            .write(toFile: home + "/.aws/credentials", atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: home) }

    static let container = #"{"AccessKeyId":"ASIACTR","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-01T00:00:00Z"}"#

    func resolve(_ env: [String: String], profile: String? = nil) throws -> (Credentials, String) {
        let r = try Credentials.resolveWithSource(environment: env.merging(["AWS_EC2_METADATA_DISABLED": "true"]) { a, _ in a },
                                                  home: home, profile: profile)
        return (r.credentials, r.source)
    }

    func testOrderEnvironmentProfileContainerIMDS() throws {
        let ctr = try StubHTTPServer { _ in .text(200, Self.container) }
        let keys = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"]
        let full = ["AWS_CONTAINER_CREDENTIALS_FULL_URI": ctr.url + "/c"]
        XCTAssertEqual(try resolve(keys.merging(full) { $1 }).1, "environment")
        XCTAssertEqual(try resolve(full).0.accessKeyId, "AKIDFILE")
        // A profile without credentials falls through to the container...
        XCTAssertEqual(try resolve(full.merging(["AWS_PROFILE": "other"]) { $1 }).1, "container credentials")
        // ...and with nothing configured, IMDS (here a stub) is last.
        let imds = try StubHTTPServer { r in
            if r.method == "PUT" { return .text(200, "T") }
            return r.path.hasSuffix("/") ? .text(200, "role") : .text(200, Self.container)
        }
        let found = try Credentials.resolveWithSource(
            environment: ["AWS_PROFILE": "other", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url], home: home)
        XCTAssertEqual(found.source, "EC2 instance metadata")
        XCTAssertEqual(found.credentials.accessKeyId, "ASIACTR")
        XCTAssertEqual(ctr.requests.count, 1)
    }

    func testExplicitProfileUsesOnlyThatProfile() throws {
        let ctr = try StubHTTPServer { _ in .text(200, Self.container) }
        let env = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI": ctr.url + "/c"]
        XCTAssertEqual(try resolve(env, profile: "default").0.accessKeyId, "AKIDFILE")
        XCTAssertThrowsError(try resolve(env, profile: "other")) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .notFound)
            XCTAssertTrue("\(e)".contains("profile 'other'"), "\(e)")
        }
        XCTAssertThrowsError(try resolve(env, profile: "nope")) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .profileNotFound)
        }
        XCTAssertEqual(ctr.requests.count, 0, "--profile never reaches the container endpoint")
        // AWS_PROFILE keeps the whole chain: environment keys still win.
        XCTAssertEqual(try resolve(env.merging(["AWS_PROFILE": "default"]) { $1 }).0.accessKeyId, "AKIDENV")
    }

    func testNothingFoundIsOneLineNamingEverySource() throws {
        try FileManager.default.removeItem(atPath: home + "/.aws/credentials")
        XCTAssertThrowsError(try resolve([:])) { e in
            let text = "\(e)"
            XCTAssertFalse(text.contains("\n"))
            for s in ["environment", "web identity", "profile 'default'", "container credentials",
                      "EC2 instance metadata", "metadata disabled", home + "/.aws/credentials"] {
                XCTAssertTrue(text.contains(s), "\(s) missing: \(text)")
            }
        }
    }
}
