import Cache
import Foundation
import XCTest

/// Every kind of bad input, for every command: a one-line error on stderr, a non-zero exit,
/// no crash (signal) and no hang (each run is bounded).
final class BadInputIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket("badin")
        work = try Harness.tempDir("badin")
        try Harness.fixture(["mkbucket", bucket])
        try Harness.makeFile(work + "/one", size: 1000, seed: 1)
        try Harness.fixture(["put", bucket, "p/one", work + "/one"])
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: work)
    }

    /// (arguments, environment, text the one line must contain)
    typealias Case = (args: [String], env: [String: String], needle: String)

    func check(_ cases: [Case], file: StaticString = #filePath, line: UInt = #line) throws {
        for c in cases {
            let r = try Harness.soak(c.args, env: c.env, timeout: 60)
            let what = c.args.joined(separator: " ")
            XCTAssertNotEqual(r.status, 0, "\(what): \(r.stderr)", file: file, line: line)
            XCTAssertFalse(r.uncaughtSignal, "\(what) crashed", file: file, line: line)
            // One line in all: retries on the way are logged at debug level only.
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(what): \(r.stderr)", file: file, line: line)
            XCTAssertTrue(r.stderr.lowercased().contains(c.needle.lowercased()), "\(what): \(r.stderr)", file: file, line: line)
            for bad in ["Fatal error", "Stack dump", "backtrace", "Swift runtime failure"] {
                XCTAssertFalse(r.stderr.contains(bad), "\(what): \(r.stderr)", file: file, line: line)
            }
        }
    }

    var quickRetries: [String: String] { ["MAX_RETRIES": "2", "RETRY_DELAY": "0.05"] }

    func testMalformedURIsAndFlagValues() throws {
        let dest = work + "/d", cache = work + "/c", mnt = work + "/m"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let ep = ["--endpoint-url", endpoint]
        try check([
            (["download", "s3//b/p", dest] + ep, [:], "S3 URI"),
            (["download", "s3://", dest] + ep, [:], "bucket"),
            (["prewarm", "https://b/p", "--cache-dir", cache] + ep, [:], "S3 URI"),
            (["mount", "b/p", mnt, "--cache-dir", cache, "--foreground"] + ep, [:], "S3 URI"),
            (["download", "s3://\(bucket)/p", dest, "--endpoint-url", "not a url"], [:], "endpoint"),
            (["download", "s3://\(bucket)/p", dest, "--log-level", "loud"] + ep, [:], "log"),
            (["download", "s3://\(bucket)/p", dest, "--addressing", "sideways"] + ep, [:], "addressing"),
            (["download", "s3://\(bucket)/p", dest] + ep, ["MAX_PROCESSES": "0"], "MAX_PROCESSES"),
            (["download", "s3://\(bucket)/p", dest] + ep, ["MIN_PROCESSES": "9", "MAX_PROCESSES": "2"], "PROCESSES"),
            (["download", "s3://\(bucket)/p", dest] + ep, ["MAX_SPEED": "fast"], "MAX_SPEED"),
            (["download", "s3://\(bucket)/p", dest] + ep, ["RETRY_DELAY": "-1"], "RETRY_DELAY"),
            (["download", "s3://\(bucket)/p", dest] + ep, ["S3_VERIFY_SSL": "maybe"], "S3_VERIFY_SSL"),
            (["prewarm", "s3://\(bucket)/p", "--cache-dir", cache, "--cache-size", "12 parsecs"] + ep, [:], "--cache-size"),
            (["prewarm", "s3://\(bucket)/p", "--cache-dir", cache, "--shard", "1/0"] + ep, [:], "--shard"),
            (["mount", "s3://\(bucket)/p", mnt, "--cache-dir", cache, "--read-ahead", "-1", "--foreground"] + ep, [:], "--read-ahead"),
            (["mount", "s3://\(bucket)/p", mnt, "--cache-dir", cache, "--metadata-ttl", "-5", "--foreground"] + ep, [:], "--metadata-ttl"),
            (["mount", "s3://\(bucket)/p", mnt, "--cache-dir", cache, "--eager-listing", "-1", "--foreground"] + ep, [:], "--eager-listing"),
            (["mount", "s3://\(bucket)/p", mnt, "--cache-dir", cache, "--metrics-address", "nowhere", "--foreground"] + ep, [:], "metrics"),
            (["cache", "evict", "--cache-dir", cache], [:], "prefix"),
        ])
    }

    func testBucketCredentialsEndpointAndTLS() throws {
        let dest = work + "/d", cache = work + "/c"
        let missing = "soak-no-such-bucket-\(UInt32.random(in: 0...999_999))"
        // The test server speaks plain HTTP: https to it fails the TLS handshake.
        let tls = endpoint.replacingOccurrences(of: "http://", with: "https://")
        try check([
            (["download", "s3://\(missing)/p", dest, "--endpoint-url", endpoint], quickRetries, missing),
            (["prewarm", "s3://\(missing)/p", "--cache-dir", cache, "--endpoint-url", endpoint], quickRetries, missing),
            (["download", "s3://\(bucket)/p", dest, "--endpoint-url", endpoint],
             quickRetries.merging(["AWS_SECRET_ACCESS_KEY": "wrong-secret-0000"]) { $1 }, "403"),
            (["prewarm", "s3://\(bucket)/p", "--cache-dir", cache, "--endpoint-url", endpoint],
             quickRetries.merging(["AWS_ACCESS_KEY_ID": "nobody"]) { $1 }, "403"),
            (["download", "s3://\(bucket)/p", dest, "--endpoint-url", "http://127.0.0.1:1"], quickRetries, "127.0.0.1:1"),
            (["prewarm", "s3://\(bucket)/p", "--cache-dir", cache, "--endpoint-url", "http://127.0.0.1:1"], quickRetries, "127.0.0.1:1"),
            (["download", "s3://\(bucket)/p", dest, "--endpoint-url", tls], quickRetries, "SSL"),
            (["download", "s3://\(bucket)/p", dest, "--endpoint-url", endpoint],
             ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": work + "/none",
              "AWS_CONFIG_FILE": work + "/none", "HOME": work, "AWS_EC2_METADATA_DISABLED": "true"], "credentials"),
        ])
        // The wrong secret never shows, whatever the level.
        let r = try Harness.soak(["download", "s3://\(bucket)/p", dest, "--endpoint-url", endpoint, "--log-level", "debug"],
                                 env: quickRetries.merging(["AWS_SECRET_ACCESS_KEY": "wrong-secret-0000"]) { $1 }, timeout: 60)
        XCTAssertFalse(r.stderr.contains("wrong-secret-0000"))
    }

    func testUnwritableDestinationsCacheDirectoriesAndMountpoints() throws {
        let ep = ["--endpoint-url", endpoint]
        let file = work + "/a-file"
        try Harness.makeFile(file, size: 1, seed: 2)
        let notEmpty = work + "/not-empty"
        try FileManager.default.createDirectory(atPath: notEmpty, withIntermediateDirectories: true)
        try Harness.makeFile(notEmpty + "/x", size: 1, seed: 3)
        // A cache written by a newer soak.
        let newer = work + "/newer"
        _ = try DiskCache(directory: newer)
        try SQLiteDatabase(path: newer + "/index.db").exec("PRAGMA user_version=99")
        try check([
            (["download", "s3://\(bucket)/p", file + "/dest"] + ep, [:], "a-file"),
            (["download", "s3://\(bucket)/p", "/proc/soak-dest"] + ep, [:], "/proc/soak-dest"),
            (["prewarm", "s3://\(bucket)/p", "--cache-dir", file + "/cache"] + ep, [:], "a-file"),
            (["prewarm", "s3://\(bucket)/p", "--cache-dir", newer] + ep, [:], "newer"),
            (["mount", "s3://\(bucket)/p", work + "/no-such-dir", "--cache-dir", work + "/c", "--foreground"] + ep, [:], "does not exist"),
            (["mount", "s3://\(bucket)/p", notEmpty, "--cache-dir", work + "/c", "--foreground"] + ep, [:], "not empty"),
            (["mount", "s3://\(bucket)/p", file, "--cache-dir", work + "/c", "--foreground"] + ep, [:], "not a directory"),
            (["mount", "s3://\(bucket)/p", notEmpty, "--cache-dir", newer, "--foreground"] + ep, [:], "newer"),
            (["mount", "s3://\(bucket)/p", notEmpty, "--cache-dir", "/proc/soak-cache", "--foreground"] + ep, [:], "/proc/soak-cache"),
        ])
    }
}
