import Foundation
import SoakCore
import XCTest

/// The scriptable CLI of `download` and `prewarm` against a real SeaweedFS: the `--json` report
/// (a partial failure included), `--dryrun` writing nothing, `--quiet`, `--no-progress` and
/// progress lines off a terminal, `--log-file` and RFC 3339 log timestamps, and the one-line
/// warning for an empty selection.
final class ScriptableOutputIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""

    /// `2026-12-07T21:00:00.123Z soak: LEVEL: …`
    static let logLine = try! NSRegularExpression(
        pattern: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z soak: [a-z]+: "#)

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket("cli")
        work = try Harness.tempDir("cli")
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws {
        umount2(work + "/mnt", Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: work)
    }

    func soak(_ args: [String], env: [String: String] = [:], timeout: Double = 120) throws -> Harness.Result {
        try Harness.soak(args + ["--endpoint-url", endpoint], env: env, timeout: timeout)
    }

    /// stdout holds exactly one line, a JSON object; returns it.
    func report(_ r: Harness.Result, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        XCTAssertEqual(lines.count, 1, "stdout is one JSON line: \(r.stdout)\nstderr: \(r.stderr)", file: file, line: line)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return try XCTUnwrap(obj, "not a JSON object: \(r.stdout)", file: file, line: line)
    }

    func int(_ o: [String: Any], _ path: String) -> Int? {
        var cur: Any? = o
        for part in path.split(separator: ".") { cur = (cur as? [String: Any])?[String(part)] }
        return (cur as? NSNumber)?.intValue
    }

    func isLogLine(_ s: Substring) -> Bool {
        Self.logLine.firstMatch(in: String(s), range: NSRange(location: 0, length: s.utf16.count)) != nil
    }

    func testDownloadJSONReportsTheOutcomeAndAPartialFailure() throws {
        let f = work + "/f"
        try Harness.makeFile(f, size: 1000, seed: 1)
        try Harness.fixture(["put", bucket, "pp/ok.bin", f])
        try Harness.fixture(["put", bucket, "pp/blocked/x.bin", f])
        let dest = work + "/dest"
        try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
        try Data("a file where a directory must go".utf8).write(to: URL(fileURLWithPath: dest + "/blocked"))

        let r = try soak(["download", "s3://\(bucket)/pp/", dest, "--json"])
        XCTAssertEqual(r.status, 3, r.stderr)
        let j = try report(r)
        XCTAssertEqual(j["command"] as? String, "download")
        XCTAssertEqual(j["source"] as? String, "s3://\(bucket)/pp/")
        XCTAssertEqual(int(j, "exit_status"), 3)
        XCTAssertEqual(int(j, "objects.listed"), 2)
        XCTAssertEqual(int(j, "objects.selected"), 2)
        XCTAssertEqual(int(j, "objects.done"), 1)
        XCTAssertEqual(int(j, "objects.skipped"), 0)
        XCTAssertEqual(int(j, "objects.failed"), 1)
        XCTAssertEqual(int(j, "bytes.selected"), 2000)
        XCTAssertGreaterThanOrEqual(int(j, "bytes.fetched") ?? 0, 1000)
        XCTAssertNotNil(j["seconds"] as? Double)
        XCTAssertEqual(j["interrupted"] as? Bool, false)
        let failures = try XCTUnwrap(j["failures"] as? [[String: Any]])
        XCTAssertEqual(failures.count, 1)
        XCTAssertEqual(failures.first?["key"] as? String, "pp/blocked/x.bin")
        XCTAssertFalse((failures.first?["reason"] as? String ?? "").isEmpty)
        XCTAssertNil(j["would_fetch"], "only a dry run lists objects")
        XCTAssertTrue(r.stderr.contains("1 failed"), "the summary still goes to stderr: \(r.stderr)")

        // Once the obstacle is gone: exit 0, the done object skipped as up to date.
        try FileManager.default.removeItem(atPath: dest + "/blocked")
        let again = try report(try soak(["download", "s3://\(bucket)/pp/", dest, "--json"]))
        XCTAssertEqual(int(again, "exit_status"), 0)
        XCTAssertEqual(int(again, "objects.done"), 1)
        XCTAssertEqual(int(again, "objects.skipped"), 1)
        XCTAssertEqual((again["failures"] as? [Any])?.count, 0)
    }

    func testPrewarmJSONAndARerunThatFindsEverythingCached() throws {
        _ = try Harness.uploadTree(["a.bin": 3000, "d/b.bin": 5000, "d/c.txt": 10], bucket: bucket, prefix: "w/", work: work)
        let cache = ["--cache-dir", work + "/cache"]
        let r = try soak(["prewarm", "s3://\(bucket)/w", "--json", "--exclude", "*.txt"] + cache)
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try report(r)
        XCTAssertEqual(j["command"] as? String, "prewarm")
        XCTAssertEqual(int(j, "exit_status"), 0)
        XCTAssertEqual(int(j, "objects.selected"), 2)
        XCTAssertEqual(int(j, "objects.done"), 2)
        XCTAssertEqual(int(j, "bytes.selected"), 8000)
        let again = try report(try soak(["prewarm", "s3://\(bucket)/w", "--json", "--exclude", "*.txt"] + cache))
        XCTAssertEqual(int(again, "objects.skipped"), 2)
        XCTAssertEqual(int(again, "objects.done"), 0)
        XCTAssertEqual(int(again, "bytes.fetched"), 0)
    }

    /// A dry run lists the selection and creates nothing: no DEST, no cache directory.
    func testDryrunListsTheSelectionAndWritesNothing() throws {
        _ = try Harness.uploadTree(["a.bin": 3000, "d/b.bin": 5000, "d/c.txt": 10], bucket: bucket, prefix: "w/", work: work)
        let dest = work + "/dest", cacheDir = work + "/cache"
        let d = try soak(["download", "s3://\(bucket)/w/", dest, "--dryrun", "--exclude", "*.txt"])
        XCTAssertEqual(d.status, 0, d.stderr)
        XCTAssertEqual(d.stdout, "3000\tw/a.bin\n5000\tw/d/b.bin\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest), "a dry run created DEST")

        let p = try soak(["prewarm", "s3://\(bucket)/w/", "--dryrun", "--json", "--cache-dir", cacheDir])
        XCTAssertEqual(p.status, 0, p.stderr)
        let j = try report(p)
        XCTAssertEqual(j["dryrun"] as? Bool, true)
        XCTAssertEqual(int(j, "objects.selected"), 3)
        XCTAssertEqual(int(j, "bytes.fetched"), 0)
        let listed = try XCTUnwrap(j["would_fetch"] as? [[String: Any]])
        XCTAssertEqual(listed.map { $0["key"] as? String }, ["w/a.bin", "w/d/b.bin", "w/d/c.txt"])
        XCTAssertEqual(listed.map { ($0["size"] as? NSNumber)?.intValue }, [3000, 5000, 10])
        XCTAssertFalse(FileManager.default.fileExists(atPath: cacheDir), "a dry run created the cache directory")
    }

    /// A typo'd prefix or filters that match nothing: one timestamped warning line, exit 0.
    func testAnEmptySelectionWarnsInOneLineAndSucceeds() throws {
        _ = try Harness.uploadTree(["a.bin": 100], bucket: bucket, prefix: "w/", work: work)
        let runs: [[String]] = [
            ["download", "s3://\(bucket)/typo/", work + "/dest"],
            ["download", "s3://\(bucket)/w/", work + "/dest", "--exclude", "*"],
            ["prewarm", "s3://\(bucket)/typo/", "--cache-dir", work + "/cache"],
        ]
        for args in runs {
            let r = try soak(args + ["--json"])
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertEqual(int(try report(r), "objects.selected"), 0)
            let warnings = r.stderr.split(separator: "\n").filter { $0.contains("soak: warning:") }
            XCTAssertEqual(warnings.count, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(warnings.first?.contains("no objects selected") ?? false, "\(args): \(r.stderr)")
            XCTAssertTrue(warnings.first.map(isLogLine) ?? false, "an RFC 3339 timestamp, then soak: warning: \(r.stderr)")
            XCTAssertTrue(r.stderr.split(separator: "\n").last?.contains("0 objects selected of") ?? false,
                          "the summary stays the last line: \(r.stderr)")
        }
    }

    /// Keys that were all refused are failures, not an empty selection: no warning, exit 3.
    func testRefusedKeysAreNotAnEmptySelection() throws {
        let f = work + "/f"
        try Harness.makeFile(f, size: 10, seed: 1)
        try Harness.fixture(["put", bucket, "r/.soak-partial/x", f])
        let r = try soak(["download", "s3://\(bucket)/r/", work + "/dest", "--json"])
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertFalse(r.stderr.contains("no objects selected"), r.stderr)
        XCTAssertEqual((try report(r)["failures"] as? [[String: Any]])?.first?["key"] as? String, "r/.soak-partial/x")
    }

    /// --quiet: nothing on stderr for a clean run, one error line per failed object otherwise.
    func testQuietPrintsErrorsOnly() throws {
        let f = work + "/f"
        try Harness.makeFile(f, size: 100, seed: 1)
        try Harness.fixture(["put", bucket, "pp/ok.bin", f])
        let clean = try soak(["download", "s3://\(bucket)/pp/", work + "/d1", "--quiet"])
        XCTAssertEqual(clean.status, 0, clean.stderr)
        XCTAssertEqual(clean.stderr, "")
        XCTAssertEqual(clean.stdout, "")
        XCTAssertEqual(try soak(["download", "s3://\(bucket)/typo/", work + "/d2", "--quiet"]).stderr, "",
                       "--quiet drops warnings")

        try Harness.fixture(["put", bucket, "pp/blocked/x.bin", f])
        let dest = work + "/d3"
        try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: dest + "/blocked"))
        let partial = try soak(["download", "s3://\(bucket)/pp/", dest, "--quiet"])
        XCTAssertEqual(partial.status, 3, partial.stderr)
        let lines = partial.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, partial.stderr)
        XCTAssertTrue(lines.first?.hasPrefix("soak: error: pp/blocked/x.bin: ") ?? false, partial.stderr)
    }

    /// --log-file: log lines (timestamped) go to the file, created 0600 and appended to.
    func testLogFileTakesTheLogLines() throws {
        _ = try Harness.uploadTree(["a.bin": 100], bucket: bucket, prefix: "w/", work: work)
        let log = work + "/soak.log"
        for dest in ["d1", "d2"] {
            let r = try soak(["download", "s3://\(bucket)/w/", work + "/" + dest, "--log-level", "debug", "--log-file", log])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertFalse(r.stderr.contains("soak: debug:"), "debug lines went to stderr: \(r.stderr)")
        }
        let text = try String(contentsOfFile: log, encoding: .utf8)
        let lines = text.split(separator: "\n")
        XCTAssertFalse(lines.isEmpty)
        for l in lines { XCTAssertTrue(isLogLine(l), "not a timestamped log line: \(l)") }
        XCTAssertEqual(lines.filter { $0.contains("credentials from") }.count, 2, "appended, not replaced:\n\(text)")
        let mode = try FileManager.default.attributesOfItem(atPath: log)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)

        let bad = try soak(["download", "s3://\(bucket)/w/", work + "/d3", "--log-file", work + "/no/such/dir/log"])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.hasPrefix("soak: error: cannot open --log-file"), bad.stderr)
    }

    /// SIGINT mid-run: the JSON still comes, with interrupted true and exit_status 130.
    func testJSONOfAnInterruptedRun() throws {
        _ = try Harness.uploadTree(["big.bin": 7_000_000], bucket: bucket, prefix: "w/", work: work)
        let r = try Harness.soak(["download", "s3://\(bucket)/w/", work + "/d", "--json", "--endpoint-url", endpoint],
                                 env: ["MAX_SPEED": "1"], timeout: 60) { p in
            let pid = p.processIdentifier
            DispatchQueue.global().asyncAfter(deadline: .now() + 2) { kill(pid, SIGINT) }
        }
        XCTAssertEqual(r.status, 130, r.stderr)
        let j = try report(r)
        XCTAssertEqual(int(j, "exit_status"), 130)
        XCTAssertEqual(j["interrupted"] as? Bool, true)
        XCTAssertEqual((j["failures"] as? [[String: Any]])?.first?["key"] as? String, "w/big.bin")
    }

    /// Off a terminal, progress is a log line at most every 5 s at the default log level;
    /// --no-progress turns it off. MAX_SPEED stretches a 7 MB download to about 7 s.
    func testProgressLinesOffATerminal() throws {
        _ = try Harness.uploadTree(["big.bin": 7_000_000], bucket: bucket, prefix: "w/", work: work)
        let slow = ["MAX_SPEED": "1"]
        let r = try soak(["download", "s3://\(bucket)/w/", work + "/d1"], env: slow)
        XCTAssertEqual(r.status, 0, r.stderr)
        let progress = r.stderr.split(separator: "\n").filter { $0.contains("soak: progress:") }
        XCTAssertGreaterThanOrEqual(progress.count, 1, r.stderr)
        XCTAssertLessThanOrEqual(progress.count, 2, "at most one line every 5 s: \(r.stderr)")
        for l in progress { XCTAssertTrue(isLogLine(l), String(l)) }

        let q = try soak(["download", "s3://\(bucket)/w/", work + "/d2", "--no-progress"], env: slow)
        XCTAssertEqual(q.status, 0, q.stderr)
        XCTAssertFalse(q.stderr.contains("soak: progress:"), q.stderr)
    }

    /// A background mount's --log-file replaces CACHE_DIR/mount.log; its lines are timestamped.
    func testMountLogFileReplacesMountLog() throws {
        let sums = try Harness.uploadTree(["x.bin": 1000], bucket: bucket, prefix: "m/", work: work)
        let mnt = work + "/mnt", cacheDir = work + "/cache", log = work + "/mount-custom.log"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let r = try soak(["mount", "s3://\(bucket)/m", mnt, "--cache-dir", cacheDir, "--log-file", log, "--log-level", "info"],
                         timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Harness.sha256(mnt + "/x.bin"), sums["x.bin"])
        let pid = pid_t(try XCTUnwrap(r.stderr.firstMatch(of: /pid ([0-9]+)/)).1)!
        XCTAssertEqual(umount(mnt), 0)
        let deadline = Date().addingTimeInterval(20)
        while Harness.processAlive(pid) && Date() < deadline { usleep(50_000) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: cacheDir + "/mount.log"), "mount.log made despite --log-file")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        XCTAssertFalse(lines.isEmpty, "nothing logged at info")
        for l in lines { XCTAssertTrue(isLogLine(l), "not a timestamped log line: \(l)") }
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: log)[.posixPermissions] as? Int, 0o600)
    }
}
