import Cache
import Foundation
import SoakCore
import XCTest

/// The exit-code contract (README): 2 usage, 1 failure, 3 partial success, 128+N interrupted,
/// the same in every command and mode (a background mount answers like --foreground).
final class ExitCodeIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    var mnt = ""

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket("exit")
        work = try Harness.tempDir("exit")
        mnt = work + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws {
        umount2(mnt, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: work)
    }

    func expect(_ status: Int32, _ args: [String], env: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Harness.soak(args, env: env, timeout: 60)
        XCTAssertEqual(r.status, status, "\(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        XCTAssertFalse(r.uncaughtSignal, file: file, line: line)
        let lines = r.stderr.split(separator: "\n").map { SoakLogging.strippingTimestamp(String($0)) }
            .filter { !$0.hasPrefix("soak: warning:") && !$0.hasPrefix("soak: mounted") }
        XCTAssertGreaterThanOrEqual(lines.count, 1, "\(args.joined(separator: " ")): no error line", file: file, line: line)
    }

    /// Usage errors are 2, whoever finds them: the argument parser (unknown flag or command,
    /// missing argument), soak's own checks, or the mount process a background mount started.
    func testUsageErrorsAre2InEveryMode() throws {
        let ep = ["--endpoint-url", endpoint]
        try expect(2, ["download", "s3://\(bucket)/p", work + "/d", "--no-such-flag"] + ep)
        try expect(2, ["frobnicate"])
        try expect(2, ["download"])
        try expect(2, ["cache", "evict", "--cache-dir", work + "/c"])
        try expect(2, ["prewarm", "s3://\(bucket)/p", "--shard", "3/2", "--cache-dir", work + "/c"] + ep)
        for mode in [["--foreground"], []] {
            let cache = ["--cache-dir", work + "/c"]
            try expect(2, ["mount", "s3://\(bucket)/p", mnt, "--endpoint-url", "not a url"] + cache + mode)
            try expect(2, ["mount", "s3://\(bucket)/p", mnt, "--metrics-address", "nowhere"] + cache + ep + mode)
            try expect(2, ["mount", "s3://\(bucket)/p", mnt, "--read-ahead", "-1"] + cache + ep + mode)
        }
    }

    /// A run that could not be done is 1, in both mount modes too.
    func testFailuresAre1InEveryMode() throws {
        let quick = ["MAX_RETRIES": "1", "RETRY_DELAY": "0.05"]
        let missing = "soak-no-such-bucket-\(UInt32.random(in: 0...999_999))"
        try expect(1, ["download", "s3://\(missing)/p", work + "/d", "--endpoint-url", endpoint], env: quick)
        try expect(1, ["prewarm", "s3://\(missing)/p", "--cache-dir", work + "/c", "--endpoint-url", endpoint], env: quick)
        try expect(1, ["cache", "stats", "--cache-dir", work + "/nothing-here"])
        try expect(1, ["status", "--cache-dir", work + "/c"])  // a soak cache, no mount running
        for mode in [["--foreground"], []] {
            let args = ["--cache-dir", work + "/c", "--endpoint-url", endpoint] + mode
            try expect(1, ["mount", "s3://\(bucket)/p", work + "/no-such-mountpoint"] + args)
            try expect(1, ["mount", "s3://\(missing)/p", mnt] + args, env: quick)
        }
        let proj = work + "/proj"
        try FileManager.default.createDirectory(atPath: proj + "/data", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: proj + "/data/results.csv"))
        try expect(1, ["cache", "clear", "--cache-dir", proj])
    }

    /// Some selected objects failed, the rest is complete: 3.
    func testPartialSuccessIs3() throws {
        let f = work + "/f"
        try Harness.makeFile(f, size: 100, seed: 1)
        try Harness.fixture(["put", bucket, "pp/ok.bin", f])
        try Harness.fixture(["put", bucket, "pp/blocked/x.bin", f])
        let dest = work + "/dest"
        try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
        try Data("a file where a directory must go".utf8).write(to: URL(fileURLWithPath: dest + "/blocked"))
        let r = try Harness.soak(["download", "s3://\(bucket)/pp/", dest, "--endpoint-url", endpoint], timeout: 60)
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertEqual(try Harness.sha256(dest + "/ok.bin"), try Harness.sha256(f))
    }
}
