/// credential_process with real scripts: a good document, bad JSON, a failing exit, expired
/// credentials, a hung process; and the command-line splitting.
import Foundation
import XCTest
@testable import S3

final class ProcessCredentialTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("soak-proc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/.aws", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Writes an executable shell script and returns its path.
    func script(_ name: String, _ body: String) throws -> String {
        let path = dir + "/" + name
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func provider(_ command: String, timeout: Double = 10) -> ProcessCredentialProvider {
        ProcessCredentialProvider(context: CredentialContext(environment: ["PATH": "/usr/bin:/bin", "FROM_ENV": "yes"],
                                                             home: dir, processTimeout: timeout),
                                  command: command, profile: "p")
    }

    func testValidDocumentWithArgumentsAndEnvironment() throws {
        let s = try script("good", """
            [ "$1" = "two words" ] && [ "$2" = "it's" ] && [ "$FROM_ENV" = yes ] || exit 9
            echo 'note on stderr' >&2
            echo '{"Version": 1, "AccessKeyId": "ASIAPROC", "SecretAccessKey": "proc-secret",'
            echo ' "SessionToken": "proc-token", "Expiration": "2030-01-01T00:00:00+00:00"}'
            """)
        let c = try XCTUnwrap(provider("\(s) 'two words' \"it's\"").load())
        XCTAssertEqual(c.accessKeyId, "ASIAPROC")
        XCTAssertEqual(c.secretAccessKey, "proc-secret")
        XCTAssertEqual(c.sessionToken, "proc-token")
        XCTAssertEqual(c.expiration, Date(timeIntervalSince1970: 1_893_456_000))
    }

    func testLongTermKeysWithoutExpirationThroughTheProfile() throws {
        let s = try script("static", #"echo '{"Version":1,"AccessKeyId":"AKIAPROC","SecretAccessKey":"x"}'"#)
        try "[profile p]\ncredential_process = \(s)\n".write(toFile: dir + "/.aws/config", atomically: true, encoding: .utf8)
        let found = try Credentials.resolveWithSource(environment: ["AWS_EC2_METADATA_DISABLED": "true"], home: dir,
                                                      profile: "p")
        XCTAssertEqual(found.credentials.accessKeyId, "AKIAPROC")
        XCTAssertNil(found.credentials.expiration)
    }

    func testBadJSONNeverEchoesTheOutput() throws {
        let s = try script("bad", "echo 'AccessKeyId=AKIA SecretAccessKey=leaked-secret'")
        XCTAssertThrowsError(try provider(s).load()) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .failed)
            XCTAssertTrue("\(e)".contains("not a JSON credentials document"), "\(e)")
            XCTAssertFalse("\(e)".contains("leaked-secret"))
        }
        let v2 = try script("v2", #"echo '{"Version":2,"AccessKeyId":"A","SecretAccessKey":"S"}'"#)
        XCTAssertThrowsError(try provider(v2).load()) { e in XCTAssertTrue("\(e)".contains("Version 2"), "\(e)") }
    }

    func testNonZeroExitAndMissingProgram() throws {
        let s = try script("fail", "echo 'mfa needed' >&2; exit 3")
        XCTAssertThrowsError(try provider(s).load()) { e in
            XCTAssertTrue("\(e)".contains("exited with status 3"), "\(e)")
            XCTAssertTrue("\(e)".contains("credential_process of profile 'p'"), "\(e)")
        }
        XCTAssertThrowsError(try provider(dir + "/no-such-program").load()) { e in
            XCTAssertTrue("\(e)".contains("cannot run"), "\(e)")
        }
    }

    func testExpiredCredentialsAreRefused() throws {
        let s = try script("old", #"echo '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"2020-01-01T00:00:00Z"}'"#)
        XCTAssertThrowsError(try provider(s).load()) { e in XCTAssertTrue("\(e)".contains("expired"), "\(e)") }
    }

    func testHungProcessIsKilled() throws {
        let s = try script("hang", "exec sleep 30")
        XCTAssertThrowsError(try provider(s, timeout: 0.3).load()) { e in
            XCTAssertTrue("\(e)".contains("did not finish"), "\(e)")
        }
    }

    func testSplitting() {
        XCTAssertEqual(ProcessCredentialProvider.split("a b\tc"), ["a", "b", "c"])
        XCTAssertEqual(ProcessCredentialProvider.split(#"tool --name 'x y' "a \"q\" \$b\n" c\ d"#),
                       ["tool", "--name", "x y", #"a "q" $b\n"#, "c d"])
        XCTAssertEqual(ProcessCredentialProvider.split("''"), [""])
        XCTAssertNil(ProcessCredentialProvider.split("tool 'open"))
        XCTAssertEqual(ProcessCredentialProvider.split("   "), [])
    }
}
