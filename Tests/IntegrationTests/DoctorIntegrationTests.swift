import Foundation
import XCTest

/// `soak doctor` against SeaweedFS: each thing a first mount needs, one line each, and the
/// exit status they add up to.
final class DoctorIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    let vfat = VfatImage()

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket("doctor")
        work = try Harness.tempDir("doctor")
        try Harness.fixture(["mkbucket", bucket])
        _ = try Harness.uploadTree(["a.bin": 100], bucket: bucket, prefix: "p/", work: work)
    }

    override func tearDownWithError() throws {
        vfat.unmount()
        try? FileManager.default.removeItem(atPath: work)
    }

    func doctor(_ args: [String], env: [String: String] = [:], timeout: Double = 60) throws -> Harness.Result {
        try Harness.soak(["doctor"] + args, env: env, timeout: timeout)
    }

    /// check name → (status, detail) from the printed lines.
    func lines(_ r: Harness.Result) -> [String: (status: String, detail: String)] {
        var out: [String: (String, String)] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            guard parts.count == 3 else { XCTFail("not a check line: \(line)"); continue }
            out[String(parts[1])] = (String(parts[0]), String(parts[2]).trimmingCharacters(in: .whitespaces))
        }
        return out
    }

    func testHappyPathEveryCheckOk() throws {
        let cache = work + "/cache"
        let r = try doctor(["s3://\(bucket)/p/", "--endpoint-url", endpoint, "--cache-dir", cache, "--cache-size", "100M"])
        let l = lines(r)
        for name in ["credentials", "region", "endpoint", "list", "fuse-device", "fusermount", "apparmor",
                     "cache-dir", "cache-space", "cache-tmpfile", "cache-xattr"] {
            XCTAssertEqual(l[name]?.status, "ok", "\(name): \(l[name]?.detail ?? "missing")\n\(r.stdout)\(r.stderr)")
        }
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(l["credentials"]?.detail.contains("environment") == true, r.stdout)
        XCTAssertTrue(l["region"]?.detail.contains("AWS_REGION") == true, r.stdout)
        XCTAssertTrue(l["endpoint"]?.detail.contains("clock skew") == true, r.stdout)
        XCTAssertNil(l["allow-other"], "allow-other is checked only when asked for")
        XCTAssertFalse(FileManager.default.fileExists(atPath: cache), "doctor created the cache directory")
        XCTAssertFalse(r.stdout.contains(Harness.env["AWS_SECRET_ACCESS_KEY"] ?? "\u{0}"), "the secret was printed")

        // An existing cache directory: the probes leave nothing in it.
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        let again = try doctor(["s3://\(bucket)/p/", "--endpoint-url", endpoint, "--cache-dir", cache, "--allow-other"])
        XCTAssertEqual(again.status, 0, again.stdout + again.stderr)
        XCTAssertEqual(lines(again)["allow-other"]?.status, "ok", again.stdout)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache), [], "doctor left files in the cache")
    }

    func testWrongKeyFailsTheCredentialsLine() throws {
        for env in [["AWS_SECRET_ACCESS_KEY": "not-the-secret"], ["AWS_ACCESS_KEY_ID": "AKIANOSUCHKEY"]] {
            let r = try doctor(["s3://\(bucket)/p/", "--endpoint-url", endpoint, "--cache-dir", work + "/c"], env: env)
            XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
            let l = lines(r)
            XCTAssertEqual(l["credentials"]?.status, "FAIL", r.stdout)
            XCTAssertTrue(l["credentials"]?.detail.contains("refused") == true, r.stdout)
            XCTAssertEqual(l["endpoint"]?.status, "ok", r.stdout)
            XCTAssertFalse(r.stdout.contains("not-the-secret"), "the secret was printed")
        }
    }

    func testNoCredentialsFailsTheCredentialsLine() throws {
        let r = try doctor(["s3://\(bucket)/p/", "--endpoint-url", endpoint, "--cache-dir", work + "/c"],
                           env: ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_CONFIG_FILE": work + "/none",
                                 "AWS_SHARED_CREDENTIALS_FILE": work + "/none", "AWS_EC2_METADATA_DISABLED": "true"])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertEqual(lines(r)["credentials"]?.status, "FAIL", r.stdout)
        XCTAssertEqual(lines(r)["list"]?.status, "warn", r.stdout)
    }

    func testMissingBucketFailsTheListLine() throws {
        let r = try doctor(["s3://\(bucket)-missing/p/", "--endpoint-url", endpoint, "--cache-dir", work + "/c"])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        let l = lines(r)
        XCTAssertEqual(l["list"]?.status, "FAIL", r.stdout)
        XCTAssertTrue(l["list"]?.detail.contains("does not exist") == true, r.stdout)
        XCTAssertEqual(l["credentials"]?.status, "ok", r.stdout)
    }

    func testEmptyPrefixWarns() throws {
        let r = try doctor(["s3://\(bucket)/typo/", "--endpoint-url", endpoint, "--cache-dir", work + "/c"])
        XCTAssertEqual(lines(r)["list"]?.status, "warn", r.stdout)
        XCTAssertTrue(lines(r)["list"]?.detail.contains("nothing under") == true, r.stdout)
    }

    /// A closed port: the endpoint line FAILs at once, the list is not tried, and the whole
    /// run ends well within the per-request bound.
    func testUnreachableEndpointFailsInBoundedTime() throws {
        let t0 = Date()
        let r = try doctor(["s3://\(bucket)/p/", "--endpoint-url", "http://127.0.0.1:1", "--cache-dir", work + "/c"], timeout: 30)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 25)
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        let l = lines(r)
        XCTAssertEqual(l["endpoint"]?.status, "FAIL", r.stdout)
        XCTAssertTrue(l["endpoint"]?.detail.contains("does not answer") == true, r.stdout)
        XCTAssertEqual(l["list"]?.status, "warn", r.stdout)
    }

    /// A server that accepts the connection and never answers: the endpoint line FAILs once
    /// the per-request bound (10 s) passes, and the run does not hang.
    func testSilentEndpointFailsInBoundedTime() throws {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", "-c", """
            import socket, sys, time
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
            print(s.getsockname()[1], flush=True)
            conns = []
            while True: conns.append(s.accept())
            """]
        let out = Pipe()
        server.standardOutput = out
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        let port = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotNil(Int(port), port)
        let t0 = Date()
        let r = try doctor(["s3://\(bucket)/p/", "--endpoint-url", "http://127.0.0.1:\(port)", "--cache-dir", work + "/c"],
                           timeout: 40)
        // Below libcurl's 20 s low-speed abort, which alone would end the request too.
        XCTAssertLessThan(Date().timeIntervalSince(t0), 18)
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertEqual(lines(r)["endpoint"]?.status, "FAIL", r.stdout)
        XCTAssertTrue(lines(r)["endpoint"]?.detail.contains("does not answer") == true, r.stdout)
    }

    /// A cache directory on vfat: no O_TMPFILE and no xattrs are warnings (the cache needs
    /// neither; downloads fall back), and nothing is left in the directory.
    func testCacheOnVfatWarnsAboutFeatures() throws {
        let mnt = try vfat.mount(mib: 64, work: work)
        let r = try doctor(["s3://\(bucket)/p/", "--endpoint-url", endpoint, "--cache-dir", mnt])
        let l = lines(r)
        XCTAssertEqual(l["cache-xattr"]?.status, "warn", r.stdout)
        XCTAssertEqual(l["cache-tmpfile"]?.status, "warn", r.stdout)
        XCTAssertEqual(l["cache-dir"]?.status, "ok", r.stdout)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mnt), [], "doctor left files on vfat")
    }

    func testJSONReport() throws {
        let r = try doctor(["s3://\(bucket)/p/", "--endpoint-url", endpoint, "--cache-dir", work + "/c", "--json"])
        let j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(j["source"] as? String, "s3://\(bucket)/p/")
        XCTAssertEqual(j["exit_status"] as? Int, Int(r.status))
        XCTAssertEqual(j["ok"] as? Bool, r.status == 0)
        let checks = try XCTUnwrap(j["checks"] as? [[String: String]])
        XCTAssertEqual(checks.first?["name"], "credentials")
        XCTAssertEqual(checks.first { $0["name"] == "list" }?["status"], "ok")
        XCTAssertTrue(checks.allSatisfy { ["ok", "warn", "fail"].contains($0["status"] ?? "") }, r.stdout)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 1, "one JSON object on one line")
    }

    func testBadInputIsAUsageError() throws {
        for args in [["not-a-uri"], ["s3://\(bucket)/p/", "--cache-size", "lots"], ["s3://\(bucket)/p/", "--endpoint-url", "ftp://x"]] {
            let r = try doctor(args + ["--cache-dir", work + "/c"])
            XCTAssertEqual(r.status, 2, "\(args): \(r.stdout)\(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("soak: error: "), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertFalse(r.uncaughtSignal)
        }
    }
}
