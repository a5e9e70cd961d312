import Foundation
import XCTest

/// `soak download` against a real SeaweedFS: awkward keys, empty and multipart objects,
/// resume after kill -9, a killed worker, and the failures users hit first.
final class DownloadIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket(String(name.split(separator: " ").last!.prefix(20)).lowercased()
            .filter { $0.isLetter || $0.isNumber })
        work = try Harness.tempDir("dl")
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: work)
    }

    func download(_ prefix: String, _ dest: String, _ extra: [String] = [], env: [String: String] = [:],
                  timeout: Double = 120, onStart: ((Process) -> Void)? = nil) throws -> Harness.Result {
        try Harness.soak(["download", "s3://\(bucket)/\(prefix)", dest, "--endpoint-url", endpoint] + extra,
                         env: env, timeout: timeout, onStart: onStart)
    }

    /// Uploads `files` (key → size) under `prefix`, returning key → sha256 of the content.
    func upload(_ files: [String: Int], prefix: String) throws -> [String: String] {
        var sums: [String: String] = [:]
        for (i, (key, size)) in files.sorted(by: { $0.key < $1.key }).enumerated() {
            let local = work + "/src-\(i)"
            try Harness.makeFile(local, size: size, seed: UInt64(i + 1))
            try Harness.fixture(["put", bucket, prefix + key, local])
            sums[key] = try Harness.sha256(local)
        }
        return sums
    }

    func testDownloadsNestedAwkwardEmptyAndMultipartObjects() throws {
        let files: [String: Int] = [
            "top.bin": 1_500_000,
            "empty.dat": 0,
            "a/b/c/deep.txt": 4096,
            "with space/file name.txt": 777,
            "ünïcødé/日本語.txt": 1234,
            "punct/+ % ? # & = ~ '.bin": 999,
            "big/twenty.bin": 20 * 1024 * 1024 + 17,  // larger than one part: fetched in ranges
        ]
        var sums = try upload(files, prefix: "data/")
        // A multipart-uploaded object (ETag "md5-N") and a directory marker.
        let mp = work + "/mp"
        try Harness.makeFile(mp, size: 11 * 1024 * 1024, seed: 99)
        try Harness.fixture(["multipart", bucket, "data/multi/part.bin", mp, String(5 * 1024 * 1024)])
        sums["multi/part.bin"] = try Harness.sha256(mp)
        let marker = work + "/empty"
        try Harness.makeFile(marker, size: 0, seed: 0)
        try Harness.fixture(["put", bucket, "data/marker-dir/", marker])
        // Something outside the prefix that must not be downloaded.
        try Harness.fixture(["put", bucket, "other/x.bin", marker])

        let dest = work + "/dest"
        let r = try download("data", dest)
        XCTAssertEqual(r.status, 0, r.stderr)
        for (key, sum) in sums {
            XCTAssertEqual(try Harness.sha256(dest + "/" + key), sum, key)
        }
        var isDir: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: dest + "/marker-dir", isDirectory: &isDir) && isDir.boolValue)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/x.bin"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/.soak-partial"), "partial dir left behind")
        let all = FileManager.default.enumerator(atPath: dest)!.compactMap { $0 as? String }
        XCTAssertEqual(all.filter { !$0.hasSuffix("/") }.count >= sums.count, true)

        // A rerun fetches nothing: every file is complete and unchanged.
        let again = try download("data", dest)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("0 downloaded, \(sums.count) already up to date"), again.stderr)

        // A changed remote object is fetched again; the others are not.
        let changed = work + "/changed"
        try Harness.makeFile(changed, size: 4096, seed: 1234)
        try Harness.fixture(["put", bucket, "data/a/b/c/deep.txt", changed])
        let third = try download("data", dest)
        XCTAssertEqual(third.status, 0, third.stderr)
        XCTAssertTrue(third.stderr.contains("1 downloaded, \(sums.count - 1) already up to date"), third.stderr)
        XCTAssertEqual(try Harness.sha256(dest + "/a/b/c/deep.txt"), try Harness.sha256(changed))
    }

    func testDirectIOWritesTheSameBytes() throws {
        // Unaligned sizes on both paths: a split object with a ragged last range, and a small one.
        let sums = try upload(["split.bin": 20 * 1024 * 1024 + 4097, "small.bin": 123_457, "page.bin": 8192,
                               "empty": 0], prefix: "dio/")
        let dest = work + "/dest"
        let r = try download("dio/", dest, env: ["SOAK_DIRECT_IO": "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for (k, s) in sums { XCTAssertEqual(try Harness.sha256(dest + "/" + k), s, k) }
        // The default writes only the split object's parts with O_DIRECT; 0 writes none so.
        for mode in ["auto", "0"] {
            let d = work + "/dest-" + mode
            let r2 = try download("dio/", d, env: ["SOAK_DIRECT_IO": mode])
            XCTAssertEqual(r2.status, 0, r2.stderr)
            for (k, s) in sums { XCTAssertEqual(try Harness.sha256(d + "/" + k), s, "\(mode): \(k)") }
        }
    }

    func testIncludeExcludeFollowAwsOrder() throws {
        _ = try upload(["a.txt": 10, "b.csv": 10, "sub/c.txt": 10, "sub/d.bin": 10], prefix: "f/")
        let dest = work + "/dest"
        let r = try download("f/", dest, ["--exclude", "*", "--include", "*.txt"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let fm = FileManager.default
        XCTAssertTrue(fm.fileExists(atPath: dest + "/a.txt"))
        XCTAssertTrue(fm.fileExists(atPath: dest + "/sub/c.txt"))
        XCTAssertFalse(fm.fileExists(atPath: dest + "/b.csv"))
        XCTAssertFalse(fm.fileExists(atPath: dest + "/sub/d.bin"))
    }

    func testFileAndDirectoryPrefixConflictIsReportedDeterministically() throws {
        _ = try upload(["a": 5, "a/b": 7], prefix: "c/")
        let dest = work + "/dest"
        let r = try download("c/", dest)
        XCTAssertNotEqual(r.status, 0, "a skipped key must make the exit status non-zero")
        XCTAssertTrue(r.stderr.contains("both a file and a directory"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest + "/a/b")).count, 7)
    }

    func testResumeAfterKill9FetchesOnlyWhatIsMissing() throws {
        let size = 48 * 1024 * 1024
        let sums = try upload(["big.bin": size, "small.bin": 1000], prefix: "r/")
        let dest = work + "/dest"
        // Throttle so the kill lands mid-download.
        var killed = false
        var workers: [pid_t] = []
        let r1 = try download("r/", dest, env: ["MAX_SPEED": "8"], timeout: 60) { p in
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                usleep(100_000)
                let parts = (try? FileManager.default.contentsOfDirectory(atPath: dest + "/.soak-partial")) ?? []
                if parts.contains(where: { $0.hasSuffix(".state") }) { break }
            }
            workers = Harness.children(of: p.processIdentifier)
            kill(p.processIdentifier, SIGKILL)
            killed = true
        }
        XCTAssertTrue(killed)
        XCTAssertTrue(r1.uncaughtSignal || r1.status != 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/big.bin"), "a half file must not appear under its name")
        // Its workers die with their coordinator (only this run's: other soaks may be running).
        XCTAssertFalse(workers.isEmpty)
        usleep(500_000)
        for w in workers { XCTAssertFalse(Harness.processAlive(w), "worker \(w) outlived its coordinator") }

        let r2 = try download("r/", dest)
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual(try Harness.sha256(dest + "/big.bin"), sums["big.bin"])
        // The second run fetched less than the whole object: completed parts were kept.
        let fetched = r2.stderr.range(of: #"([0-9.]+) MB fetched"#, options: .regularExpression)
            .map { Double(r2.stderr[$0].split(separator: " ")[0]) ?? 1e9 } ?? 1e9
        XCTAssertLessThan(fetched, Double(size) / 1e6, r2.stderr)
    }

    /// MAX_SPEED holds transfers paused, some for seconds while others take the budget: soak's
    /// own pauses are never taken for a silent server (no stall abort, no retry).
    func testPacedTransfersAreNotTakenForStalls() throws {
        var files: [String: Int] = [:]
        for i in 0..<8 { files["p\(i).bin"] = 512 * 1024 }
        let sums = try upload(files, prefix: "p/")
        let dest = work + "/dest"
        let r = try download("p/", dest, ["--log-level", "debug"], env: ["MAX_SPEED": "0.5"], timeout: 90)
        XCTAssertEqual(r.status, 0, r.stderr)
        let stalls = r.stderr.split(separator: "\n").filter { $0.contains("stalled") }
        XCTAssertTrue(stalls.isEmpty, stalls.prefix(3).joined(separator: "\n"))
        for (k, s) in sums { XCTAssertEqual(try Harness.sha256(dest + "/" + k), s) }
    }

    func testKilledWorkerIsReplacedAndItsWorkRequeued() throws {
        let sums = try upload(["w1.bin": 24 * 1024 * 1024, "w2.bin": 24 * 1024 * 1024], prefix: "k/")
        let dest = work + "/dest"
        var killedWorker = false
        let r = try download("k/", dest, env: ["MAX_SPEED": "10", "MIN_PROCESSES": "2"], timeout: 90) { p in
            guard let w = Harness.firstChild(of: p.processIdentifier, within: 15) else { return }
            usleep(700_000)
            kill(w, SIGKILL)
            killedWorker = true
        }
        XCTAssertTrue(killedWorker, "no worker process found to kill")
        XCTAssertEqual(r.status, 0, r.stderr)
        for (k, s) in sums { XCTAssertEqual(try Harness.sha256(dest + "/" + k), s) }
    }

    func testHungWorkerIsKilledAndReplaced() throws {
        let sums = try upload(["h1.bin": 16 * 1024 * 1024, "h2.bin": 16 * 1024 * 1024], prefix: "h/")
        let dest = work + "/dest"
        var stopped: pid_t = 0
        // The hang is logged at info level (its orders are retried: not a failure).
        let r = try download("h/", dest, ["--log-level", "info"], env: ["MAX_SPEED": "8", "SOAK_WORKER_HANG_TIMEOUT": "2"],
                             timeout: 90) { p in
            guard let w = Harness.firstChild(of: p.processIdentifier, within: 15) else { return }
            usleep(500_000)
            kill(w, SIGSTOP)  // alive but silent: only the hang detector can notice
            stopped = w
        }
        XCTAssertNotEqual(stopped, 0, "no worker process found to stop")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("silent"), r.stderr)
        XCTAssertFalse(Harness.processAlive(stopped), "the hung worker was not killed")
        for (k, s) in sums { XCTAssertEqual(try Harness.sha256(dest + "/" + k), s) }
    }

    func testSigintStopsCleanlyWithExit130() throws {
        _ = try upload(["slow.bin": 32 * 1024 * 1024], prefix: "s/")
        let dest = work + "/dest"
        var workers: [pid_t] = []
        let r = try download("s/", dest, env: ["MAX_SPEED": "4"], timeout: 60) { p in
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline && workers.isEmpty {
                usleep(100_000)
                workers = Harness.children(of: p.processIdentifier)
            }
            usleep(500_000)
            kill(p.processIdentifier, SIGINT)
        }
        XCTAssertEqual(r.status, 130, r.stderr)
        XCTAssertFalse(workers.isEmpty)
        for w in workers { XCTAssertFalse(Harness.processAlive(w), "worker \(w) outlived the coordinator") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/slow.bin"))
    }

    func testBadCredentialsFailWithOneLine() throws {
        let r = try download("x/", work + "/dest", env: ["AWS_SECRET_ACCESS_KEY": "wrong-secret-0000"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("403"), r.stderr)
        XCTAssertFalse(r.stderr.contains("wrong-secret-0000"), "the secret leaked into the output")
        XCTAssertLessThanOrEqual(r.stderr.split(separator: "\n").count, 2, r.stderr)
    }

    func testMissingBucketFails() throws {
        let r = try Harness.soak(["download", "s3://soak-no-such-bucket-\(UInt32.random(in: 0...999999))/p/",
                                  work + "/dest", "--endpoint-url", endpoint])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("NoSuchBucket") || r.stderr.contains("404"), r.stderr)
    }

    func testUnreachableEndpointRetriesThenFailsWithOneLine() throws {
        let started = Date()
        let r = try Harness.soak(["download", "s3://\(bucket)/x/", work + "/dest", "--endpoint-url", "http://127.0.0.1:1",
                                  "--log-level", "error"], env: ["MAX_RETRIES": "3", "RETRY_DELAY": "0.1"], timeout: 60)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("127.0.0.1:1"), r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 30, "retries must be bounded")
    }

    func testUnwritableDestinationFails() throws {
        _ = try upload(["f.bin": 10], prefix: "u/")
        let file = work + "/not-a-dir"
        try Harness.makeFile(file, size: 1, seed: 1)
        let r = try download("u/", file + "/dest")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("not-a-dir"), r.stderr)
    }

    func testBadInputIsOneLineError() throws {
        for args in [["download", "http://x/y", work], ["download", "s3://", work], ["download", "s3:///p", work]] {
            let r = try Harness.soak(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(args): \(r.stderr)")
        }
        let r = try download("x/", work + "/d", env: ["MAX_PROCESSES": "lots"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("MAX_PROCESSES"), r.stderr)
    }
}
