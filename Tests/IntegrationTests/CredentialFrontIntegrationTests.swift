import Foundation
import XCTest

/// Temporary credentials end to end, through scripts/s3front.py: a front that issues keys with
/// session tokens (container endpoint, IMDSv2), checks every S3 request as S3 does (signature
/// with the issued secret, the signed token, expiry) and re-signs it for SeaweedFS, which
/// refuses session tokens itself.
///
/// The rotation test runs with 16-second credentials by default (about 40 s);
/// `SOAK_TEST_ROTATION_LIFETIME=60` runs the issue's version with 60-second ones (about 3 min).
final class CredentialFrontIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    var processes: [Process] = []
    var mnt = ""

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket("front" + String(name.split(separator: " ").last!.prefix(12)).lowercased()
            .filter { $0.isLetter || $0.isNumber })
        work = try Harness.tempDir("front")
        mnt = work + "/mnt"
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        umount2(mnt, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: work)
    }

    struct Front {
        var url: String
        var token: String
        func stats() throws -> (issued: Int, requests: [String: Int], refused: [String: Int], issuedBy: [String: Int]) {
            let r = try Harness.run("/usr/bin/curl", ["-sf", url + "/__front/stats"], timeout: 30)
            let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            return (o["issued"] as! Int, o["requests"] as! [String: Int], o["refused"] as! [String: Int],
                    o["issued_by"] as! [String: Int])
        }
    }

    func startFront(lifetime: Double, extra: [String] = []) throws -> Front {
        let token = "tok-\(UUID().uuidString.prefix(8))"
        let (p, port) = try Harness.startPortScript("s3front.py", ["--upstream", endpoint, "--listen-port", "0",
            "--lifetime", String(lifetime), "--auth-token", token] + extra, log: work + "/front-\(processes.count).log")
        processes.append(p)
        return Front(url: "http://127.0.0.1:\(port)", token: token)
    }

    /// An environment with no static keys and no profile: only `source` can answer.
    func env(_ front: Front, source: String) -> [String: String] {
        var e = ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
                 "HOME": work, "AWS_CONFIG_FILE": work + "/none", "AWS_SHARED_CREDENTIALS_FILE": work + "/none",
                 "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ""]
        switch source {
        case "container":
            e["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = front.url + "/__front/creds"
            e["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = front.token
            e["AWS_EC2_METADATA_DISABLED"] = "true"
        default:
            e["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = ""
            e["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = front.url
            e["AWS_EC2_METADATA_DISABLED"] = "false"
        }
        return e
    }

    /// Fetches one set of keys from the front's container endpoint.
    func issue(_ front: Front) throws -> [String: String] {
        let r = try Harness.run("/usr/bin/curl", ["-sf", "-H", "Authorization: " + front.token, front.url + "/__front/creds"],
                                timeout: 30)
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: String]
    }

    /// The front refuses what S3 refuses: a wrong secret, an unknown key, a missing token, and a
    /// key past its expiration (400 ExpiredToken); the right keys get through.
    func testFrontChecksSignaturesTokensAndExpiry() throws {
        let sums = try Harness.uploadTree(["a.bin": 70_000], bucket: bucket, prefix: "p/", work: work)
        let front = try startFront(lifetime: 8)
        let c = try issue(front)
        func download(_ key: String, _ secret: String, _ token: String,
                      dest: String = "d-\(UUID().uuidString.prefix(4))") throws -> Harness.Result {
            try Harness.soak(["download", "s3://\(bucket)/p/", work + "/" + dest,
                              "--endpoint-url", front.url],
                             env: ["AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token,
                                   "MAX_RETRIES": "1", "AWS_EC2_METADATA_DISABLED": "true"], timeout: 60)
        }
        let good = try download(c["AccessKeyId"]!, c["SecretAccessKey"]!, c["Token"]!, dest: "good")
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertEqual(try? Harness.sha256(work + "/good/a.bin"), sums["a.bin"])
        XCTAssertGreaterThanOrEqual(try front.stats().requests[c["AccessKeyId"]!] ?? 0, 2, "a listing and a GET")
        XCTAssertEqual(try front.stats().refused, [:])

        let bad = try download(c["AccessKeyId"]!, "wrong-secret", c["Token"]!)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("does not match"), bad.stderr)
        let unknown = try download("ASIAUNKNOWN0000", "x", "y")
        XCTAssertNotEqual(unknown.status, 0)
        let other = try issue(front)
        let wrongToken = try download(c["AccessKeyId"]!, c["SecretAccessKey"]!, other["Token"]!)
        XCTAssertNotEqual(wrongToken.status, 0)
        XCTAssertEqual(try front.stats().refused, ["SignatureDoesNotMatch": 1, "InvalidAccessKeyId": 1, "InvalidToken": 1])

        // Past the 8-second lifetime the same keys are refused as expired.
        let exp = ISO8601DateFormatter().date(from: c["Expiration"]!)!
        if exp.timeIntervalSinceNow > -0.5 { usleep(useconds_t((exp.timeIntervalSinceNow + 1.5) * 1e6)) }
        let expired = try download(c["AccessKeyId"]!, c["SecretAccessKey"]!, c["Token"]!)
        XCTAssertNotEqual(expired.status, 0)
        XCTAssertTrue(expired.stderr.contains("expired"), expired.stderr)
        XCTAssertEqual(try front.stats().refused["ExpiredToken"], 1)
    }

    /// Each temporary source alone (container endpoint, IMDSv2), through the front: every byte
    /// of a download checked, every request signed with an issued key and its token.
    func testEachTemporarySourceAloneThroughTheFront() throws {
        var files: [String: Int] = ["big.bin": 12_000_000]
        for i in 0..<6 { files["d/f\(i).bin"] = 30_000 + i * 777 }
        let sums = try Harness.uploadTree(files, bucket: bucket, prefix: "src/", work: work)
        for source in ["container", "imds"] {
            let front = try startFront(lifetime: 900)
            let dest = work + "/dest-" + source
            let r = try Harness.soak(["download", "s3://\(bucket)/src/", dest, "--endpoint-url", front.url,
                                      "--log-level", "debug"], env: env(front, source: source), timeout: 120)
            XCTAssertEqual(r.status, 0, "\(source): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(source == "container" ? "credentials from container" : "credentials from EC2"),
                          "\(source): \(r.stderr.prefix(2000))")
            for (key, sum) in sums { XCTAssertEqual(try? Harness.sha256(dest + "/" + key), sum, "\(source): \(key)") }
            let s = try front.stats()
            XCTAssertEqual(s.issued, 1, source)
            XCTAssertEqual(s.refused, [:], source)
            XCTAssertEqual(s.requests.count, 1, source)
            XCTAssertGreaterThanOrEqual(s.requests.values.reduce(0, +), 1 + files.count, source)
            XCTAssertFalse(r.stderr.contains("FRONTTOKEN"), "\(source): a session token was logged")
        }
    }

    /// A download and a prewarm paced (MAX_SPEED, one worker) to outlive 3 lifetimes of 5-second
    /// keys from IMDSv2, with enough objects that requests keep starting throughout (a request
    /// is checked when it starts): every byte right, nothing refused, at least 4 keys signed.
    func testDownloadAndPrewarmOutliveSeveralLifetimes() throws {
        var files: [String: Int] = [:]
        for i in 0..<120 { files[String(format: "f%03d.bin", i)] = 150_000 + i * 313 }
        let sums = try Harness.uploadTree(files, bucket: bucket, prefix: "slow/", work: work)
        for tool in ["download", "prewarm"] {
            let front = try startFront(lifetime: 5)
            let dest = work + "/dest-" + tool
            let args = tool == "download" ? ["download", "s3://\(bucket)/slow/", dest, "--endpoint-url", front.url]
                : ["prewarm", "s3://\(bucket)/slow/", "--cache-dir", work + "/cache", "--endpoint-url", front.url]
            var e = env(front, source: "imds")
            e["MAX_SPEED"] = "1"
            e["MIN_PROCESSES"] = "1"
            e["MAX_PROCESSES"] = "1"
            let r = try Harness.soak(args, env: e, timeout: 180)
            XCTAssertEqual(r.status, 0, "\(tool): \(r.stderr)")
            if tool == "download" {
                for (key, sum) in sums { XCTAssertEqual(try? Harness.sha256(dest + "/" + key), sum, key) }
            } else {
                XCTAssertTrue(r.stderr.contains("\(files.count) fetched, 0 already cached"), r.stderr)
            }
            let s = try front.stats()
            XCTAssertEqual(s.refused, [:], "\(tool): \(r.stderr)")
            XCTAssertGreaterThanOrEqual(s.requests.count, 4, "\(tool): at least 3 rotations: \(s.requests)")
            print("\(tool) rotation: keys used: \(s.requests.sorted { $0.key < $1.key })")
        }
    }

    /// A mount outlives several credential lifetimes: one new file read every second through
    /// FUSE (so each read goes to S3), names re-checked often (--metadata-ttl 2: the
    /// coordinator's HEADs and listings), until at least 3 rotations happened. Every read is
    /// right, the front refused nothing, and at least 4 access keys signed requests.
    func testMountReadsAcrossCredentialRotations() throws {
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("no /dev/fuse") }
        let lifetime = Double(Harness.env["SOAK_TEST_ROTATION_LIFETIME"] ?? "") ?? 16
        // Refreshes come at 3/4 of each lifetime: 3 rotations take 2.25 lifetimes; room for more.
        let deadline = Date().addingTimeInterval(lifetime * 4 + 30)
        let count = Int(lifetime * 4) + 40
        var files: [String: Int] = [:]
        for i in 0..<count { files[String(format: "r/f%04d.bin", i)] = 20_000 + i * 97 }
        let sums = try Harness.uploadTree(files, bucket: bucket, prefix: "rot/", work: work)
        let front = try startFront(lifetime: lifetime)
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.soakBinary)
        p.arguments = ["mount", "s3://\(bucket)/rot/", mnt, "--endpoint-url", front.url, "--cache-dir", work + "/cache",
                       "--foreground", "--metadata-ttl", "2", "--read-ahead", "0", "--log-level", "info"]
        var e = Harness.env
        for (k, v) in env(front, source: "container") { e[k] = v }
        p.environment = e
        p.standardInput = FileHandle.nullDevice
        let log = work + "/mount.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try p.run()
        processes.append(p)
        func mounted() -> Bool {
            var st = stat(), parent = stat()
            return stat(mnt, &st) == 0 && stat(work, &parent) == 0 && st.st_dev != parent.st_dev
        }
        let up = Date().addingTimeInterval(30)
        while Date() < up && p.isRunning && !mounted() { usleep(50_000) }
        XCTAssertTrue(mounted(), (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        let keys = files.keys.sorted()
        var reads = 0, bad: [String] = [], afterThirdRotation = 0
        while Date() < deadline && reads < keys.count && afterThirdRotation < 3 {
            let key = keys[reads]
            reads += 1
            if (try? Harness.sha256(mnt + "/" + key)) != sums[key] { bad.append(key) }
            // Keep reading a little with the fourth key.
            if try front.stats().requests.count >= 4 { afterThirdRotation += 1 }
            usleep(1_000_000)
        }
        let s = try front.stats()
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        XCTAssertEqual(bad, [], "reads that failed or were wrong; log:\n\(text.suffix(3000))")
        XCTAssertEqual(s.refused, [:], "requests the front refused; log:\n\(text.suffix(3000))")
        XCTAssertGreaterThanOrEqual(s.requests.count, 4, "at least 3 rotations: \(s.requests)")
        XCTAssertTrue(s.requests.values.allSatisfy { $0 >= 2 }, "every key signed reads: \(s.requests)")
        XCTAssertTrue(text.contains("credentials refreshed from container"), text.suffix(3000).description)
        XCTAssertFalse(text.contains("FRONTTOKEN"), "a session token was logged")
        print("rotation: lifetime \(lifetime) s, \(reads) reads, keys used: \(s.requests.sorted { $0.key < $1.key })")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
    }
}
