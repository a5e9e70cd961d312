import Foundation
import XCTest

/// Secrets never reach a log, at any level: the secret access key, the session token and the
/// Authorization header (with its `Signature=` / `Credential=`) must not appear in what `soak
/// download`, `soak prewarm` and `soak mount` (foreground and daemon) write to stderr or
/// CACHE/mount.log at `--log-level trace`, nor in any file soak leaves in the cache or
/// destination, on success and on the error paths: a wrong secret key (403), a session token the
/// server rejects or ignores.
final class SecretsIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    var mnt = ""
    var accessKey = ""
    var secretKey = ""
    var running: Process?
    /// Recognizable, and long enough that a partial leak (a prefix) is still found.
    let fakeToken = "SoakFakeSessionToken-\(UUID().uuidString)-FwoGZXIvYXdzEBYaDNOTAREALTOKEN"
    let wrongSecret = "SoakWrongSecretKey-\(UUID().uuidString.prefix(12))-0123456789abcdef"
    /// Quick failures: the error paths must not spend minutes retrying.
    let fastRetries = ["MAX_RETRIES": "2", "RETRY_DELAY": "0.1"]

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        accessKey = try XCTUnwrap(Harness.env["AWS_ACCESS_KEY_ID"], "scripts/test exports the test credentials")
        secretKey = try XCTUnwrap(Harness.env["AWS_SECRET_ACCESS_KEY"], "scripts/test exports the test credentials")
        XCTAssertGreaterThanOrEqual(secretKey.count, 8, "a secret this short could match by accident")
        bucket = Harness.uniqueBucket("sec" + String(name.split(separator: " ").last!.prefix(16)).lowercased()
            .filter { $0.isLetter || $0.isNumber })
        work = try Harness.tempDir("sec")
        mnt = work + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        try Harness.fixture(["mkbucket", bucket])
        _ = try Harness.uploadTree(["a.bin": 300_000, "dir/b.txt": 5_000, "with space/ü.bin": 70_000],
                                   bucket: bucket, prefix: "data/", work: work)
    }

    override func tearDownWithError() throws {
        if let p = running, p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        umount2(mnt, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: work)
    }

    // MARK: Checks

    /// Fails (once, naming everything found) if `text` holds a secret or any part of a signed
    /// request's credentials.
    func assertClean(_ text: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let secrets = [("the secret access key", secretKey), ("the wrong secret key", wrongSecret),
                       ("the session token", fakeToken),
                       // A leak cut short, or split across lines, still starts like this.
                       ("the start of the secret key", String(secretKey.prefix(12))),
                       ("the start of the session token", String(fakeToken.prefix(24)))]
        var found: [String] = []
        var first: String? = nil
        for (label, secret) in secrets where !secret.isEmpty && text.contains(secret) {
            found.append(label)
            first = first ?? excerpt(text, around: secret)
        }
        let lower = text.lowercased()
        for marker in ["authorization:", "authorization=", "authorization\":", "signature=", "x-amz-signature",
                       "credential=", "aws4-hmac-sha256", "x-amz-security-token:"] where lower.contains(marker) {
            found.append("'\(marker)'")
            first = first ?? excerpt(lower, around: marker)
        }
        if !found.isEmpty {
            XCTFail("\(what) leaks \(found.joined(separator: ", ")) (request headers and secrets must never be logged); "
                    + "first: \(first ?? "")", file: file, line: line)
        }
    }

    /// The line around `needle`, secrets masked, for the failure message.
    func excerpt(_ text: String, around needle: String) -> String {
        guard let r = text.range(of: needle) else { return "" }
        let start = text[..<r.lowerBound].lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex
        let end = text[r.upperBound...].firstIndex(of: "\n") ?? text.endIndex
        var line = String(text[start..<end].prefix(400))
        for s in [secretKey, wrongSecret, fakeToken] where !s.isEmpty { line = line.replacingOccurrences(of: s, with: "<SECRET>") }
        return line.debugDescription
    }

    /// Every regular file under `dir` (logs, the index, partial and finished files): secrets are
    /// never persisted either.
    func assertFilesClean(_ dir: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let walker = FileManager.default.enumerator(atPath: dir) else { return }
        for case let rel as String in walker {
            let path = dir + "/" + rel
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
                  let data = FileManager.default.contents(atPath: path), data.count < 64 << 20 else { continue }
            let text = String(decoding: data, as: UTF8.self)
            if rel.hasSuffix(".log") {
                // Log files are checked in full (CACHE/mount.log is already checked by its test).
                if rel != "mount.log" { assertClean(text, path, file: file, line: line) }
            } else if [secretKey, wrongSecret, fakeToken].contains(where: { text.contains($0) }) {
                XCTFail("\(path) contains a secret", file: file, line: line)
            }
        }
    }

    /// Credentials for one run: the good ones, a wrong secret key, or the good ones plus a session
    /// token the server does not know.
    enum Creds: String, CaseIterable { case good, wrongSecret, sessionToken }

    func env(_ c: Creds) -> [String: String] {
        var e = fastRetries
        switch c {
        case .good: break
        case .wrongSecret: e["AWS_SECRET_ACCESS_KEY"] = wrongSecret
        case .sessionToken: e["AWS_SESSION_TOKEN"] = fakeToken
        }
        return e
    }

    // MARK: download / prewarm

    func testDownloadLogsNoSecretsAtTraceLevel() throws {
        for c in Creds.allCases {
            let dest = work + "/dest-\(c)"
            let r = try Harness.soak(["download", "s3://\(bucket)/data/", dest, "--endpoint-url", endpoint,
                                      "--log-level", "trace"], env: env(c), timeout: 120)
            XCTAssertFalse(r.uncaughtSignal, "download (\(c)) crashed: \(r.stderr.suffix(2000))")
            switch c {
            case .good:
                XCTAssertEqual(r.status, 0, r.stderr)
                XCTAssertEqual(try? Data(contentsOf: URL(fileURLWithPath: dest + "/a.bin")).count, 300_000)
            case .wrongSecret:
                XCTAssertNotEqual(r.status, 0, "a wrong secret key must fail: \(r.stderr)")
                XCTAssertTrue(r.stderr.contains("403"), r.stderr)
            case .sessionToken:
                break  // SeaweedFS may reject or ignore the token: only the logs matter here
            }
            XCTAssertFalse(r.stderr.isEmpty, "trace level logs something (\(c))")
            assertClean(r.stderr, "download (\(c)) stderr")
            assertClean(r.stdout, "download (\(c)) stdout")
            assertFilesClean(dest)
        }
    }

    func testPrewarmLogsNoSecretsAtTraceLevel() throws {
        for c in Creds.allCases {
            let cache = work + "/cache-pw-\(c)"
            let r = try Harness.soak(["prewarm", "s3://\(bucket)/data/", "--endpoint-url", endpoint, "--cache-dir", cache,
                                      "--log-level", "trace"], env: env(c), timeout: 120)
            XCTAssertFalse(r.uncaughtSignal, "prewarm (\(c)) crashed: \(r.stderr.suffix(2000))")
            switch c {
            case .good: XCTAssertEqual(r.status, 0, r.stderr)
            case .wrongSecret:
                XCTAssertNotEqual(r.status, 0, "a wrong secret key must fail: \(r.stderr)")
                XCTAssertTrue(r.stderr.contains("403"), r.stderr)
            case .sessionToken: break
            }
            XCTAssertFalse(r.stderr.isEmpty, "trace level logs something (\(c))")
            assertClean(r.stderr, "prewarm (\(c)) stderr")
            assertClean(r.stdout, "prewarm (\(c)) stdout")
            assertFilesClean(cache)
        }
    }

    // MARK: worker environment

    /// What a worker may find in its environment: libcurl's proxy variables, trust-store
    /// locations, the locale, soak's own knobs and the dynamic loader's. Written out here, not
    /// taken from the code, so a widened allowlist shows up as a failing test.
    static func workerMayHave(_ name: String) -> Bool {
        let names: Set<String> = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                  "no_proxy", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "OPENSSL_CONF",
                                  "LANG", "LANGUAGE", "LD_LIBRARY_PATH", "LD_PRELOAD"]
        return names.contains(name) || name.hasPrefix("SOAK_") || name.hasPrefix("LC_")
    }

    /// Reads a live worker's /proc/PID/environ during a download run with AWS_* credentials, a
    /// NOTIFY_SOCKET and a secret of the caller's in the coordinator's environment: none of them,
    /// and nothing unknown, reaches the worker; a proxy variable, a SOAK_ knob and the locale do.
    func testWorkersGetOnlyAnAllowlistedEnvironment() throws {
        _ = try Harness.uploadTree(["big.bin": 4_000_000], bucket: bucket, prefix: "slow/", work: work)
        let callerSecret = "SoakCallerSecret-\(UUID().uuidString)"
        let env = ["MAX_SPEED": "1", "MIN_PROCESSES": "1", "SOAK_INITIAL_PROCESSES": "1",
                   "NOTIFY_SOCKET": "/run/soak-test/notify", "SOAKTEST_DB_PASSWORD": callerSecret,
                   "AWS_SESSION_NAME_PROBE": "aws-probe", "HTTPS_PROXY": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost", "SOAK_ENV_PROBE": "passed", "LANG": "C.UTF-8"]
        let dest = work + "/dest-env"
        var workerEnv: [String: String]? = nil
        var coordinatorEnv: [String: String] = [:]
        var workerCmdline = ""
        let r = try Harness.soak(["download", "s3://\(bucket)/slow/", dest, "--endpoint-url", endpoint],
                                 env: env, timeout: 120) { p in
            guard let w = Harness.firstChild(of: p.processIdentifier, within: 15) else { return }
            // Read once it has started a worker: right after the spawn it may not have exec'd yet.
            coordinatorEnv = Self.environ(of: p.processIdentifier) ?? [:]
            // A child seen before its exec still shows the coordinator's environ: wait for the worker.
            let deadline = Date().addingTimeInterval(5)
            repeat {
                workerCmdline = (try? String(contentsOfFile: "/proc/\(w)/cmdline", encoding: .utf8)) ?? ""
                if workerCmdline.contains("__worker") { break }
                usleep(10_000)
            } while Date() < deadline
            workerEnv = Self.environ(of: w)
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        // The probe can see what it looks for: the coordinator holds all of it.
        XCTAssertNotNil(coordinatorEnv["AWS_SECRET_ACCESS_KEY"], "the coordinator's environ is readable")
        XCTAssertEqual(coordinatorEnv["NOTIFY_SOCKET"], "/run/soak-test/notify")
        let got = try XCTUnwrap(workerEnv, "no live worker found to inspect")
        XCTAssertTrue(workerCmdline.contains("__worker"), "inspected a worker: \(workerCmdline)")
        for name in got.keys.sorted() {
            XCTAssertFalse(name.hasPrefix("AWS_"), "\(name) reached a worker's environment")
            XCTAssertTrue(Self.workerMayHave(name), "\(name) is not on the workers' allowlist but reached one")
        }
        XCTAssertNil(got["NOTIFY_SOCKET"], "NOTIFY_SOCKET reached a worker")
        XCTAssertNil(got["SOAKTEST_DB_PASSWORD"], "a caller's secret reached a worker")
        XCTAssertEqual(got["HTTPS_PROXY"], "http://127.0.0.1:9", "proxy variables reach the workers")
        XCTAssertEqual(got["no_proxy"], "127.0.0.1,localhost")
        XCTAssertEqual(got["SOAK_ENV_PROBE"], "passed", "SOAK_* knobs reach the workers")
        XCTAssertEqual(got["LANG"], "C.UTF-8", "the locale reaches the workers")
        let raw = got.map { "\($0.key)=\($0.value)" }.joined(separator: "\n") + workerCmdline
        for secret in [secretKey, callerSecret] { XCTAssertFalse(raw.contains(secret), "a secret is in a worker's environ or argv") }
    }

    /// A process's environment from /proc/PID/environ (NUL-separated NAME=VALUE entries).
    static func environ(of pid: pid_t) -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
        var out: [String: String] = [:]
        for entry in data.split(separator: 0) {
            let s = String(decoding: entry, as: UTF8.self)
            guard let eq = s.firstIndex(of: "=") else { continue }
            let name = String(s[..<eq])
            if out[name] == nil { out[name] = String(s[s.index(after: eq)...]) }
        }
        return out
    }

    // MARK: mount

    func isMounted() -> Bool {
        ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
            .split(separator: "\n").contains { $0.split(separator: " ").dropFirst(4).first.map(String.init) == mnt }
    }

    func answering() -> Bool {
        let fd = open(mnt, O_RDONLY | O_DIRECTORY)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    /// Reads the whole file; nil on any error (a failing mount may answer EIO/EACCES).
    func readAll(_ path: String) -> Int? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var total = 0
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 { return nil }
            if n == 0 { return total }
            total += n
        }
    }

    func testForegroundMountLogsNoSecretsAtTraceLevel() throws {
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("no /dev/fuse") }
        for c in Creds.allCases {
            let cache = work + "/cache-mnt-\(c)"
            let log = work + "/mount-\(c).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Harness.soakBinary)
            p.arguments = ["mount", "s3://\(bucket)/data", mnt, "--endpoint-url", endpoint, "--cache-dir", cache,
                           "--foreground", "--log-level", "trace", "--metadata-ttl", "0"]
            var e = Harness.env
            for (k, v) in env(c) { e[k] = v }
            p.environment = e
            p.standardInput = FileHandle.nullDevice
            let out = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            p.standardOutput = out
            p.standardError = out
            try p.run()
            running = p
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline && p.isRunning && !(isMounted() && answering()) { usleep(50_000) }
            if p.isRunning && isMounted() {
                // Exercise listing, lookup and reads (with the bad credentials they fail; that is the point).
                _ = try? FileManager.default.contentsOfDirectory(atPath: mnt)
                let n = readAll(mnt + "/a.bin")
                _ = readAll(mnt + "/dir/b.txt")
                _ = readAll(mnt + "/with space/ü.bin")
                if c == .good { XCTAssertEqual(n, 300_000, "read through the mount") }
                kill(p.processIdentifier, SIGTERM)
                let stop = Date().addingTimeInterval(20)
                while p.isRunning && Date() < stop { usleep(50_000) }
                XCTAssertFalse(p.isRunning, "mount (\(c)) did not stop on SIGTERM")
            } else {
                XCTAssertNotEqual(c, .good, "the mount did not come up: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            running = nil
            try? out.close()
            umount2(mnt, Int32(MNT_DETACH))
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            XCTAssertNotEqual(p.terminationReason, .uncaughtSignal, "mount (\(c)) crashed: \(text.suffix(2000))")
            XCTAssertFalse(text.isEmpty, "trace level logs something (\(c))")
            assertClean(text, "mount --foreground (\(c)) output")
            assertFilesClean(cache)
        }
    }

    /// Daemon mode logs to CACHE/mount.log instead of stderr.
    func testDaemonMountLogFileHasNoSecrets() throws {
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("no /dev/fuse") }
        for c in [Creds.good, .sessionToken, .wrongSecret] {
            let cache = work + "/cache-daemon-\(c)"
            let r = try Harness.soak(["mount", "s3://\(bucket)/data", mnt, "--endpoint-url", endpoint, "--cache-dir", cache,
                                      "--log-level", "trace", "--metadata-ttl", "0"], env: env(c), timeout: 60)
            if r.status == 0 {
                XCTAssertTrue(isMounted(), "soak mount returned 0 before the mount was ready")
                let n = readAll(mnt + "/a.bin")
                if c == .good { XCTAssertEqual(n, 300_000) }
                _ = try? FileManager.default.contentsOfDirectory(atPath: mnt + "/dir")
                let pid = r.stderr.firstMatch(of: /pid ([0-9]+)/).flatMap { pid_t($0.1) }
                XCTAssertEqual(umount(mnt), 0, "umount (\(c))")
                if let pid {
                    let deadline = Date().addingTimeInterval(20)
                    while Harness.processAlive(pid) && Date() < deadline { usleep(50_000) }
                    if Harness.processAlive(pid) { kill(pid, SIGKILL); XCTFail("the daemon (\(c)) outlived umount") }
                }
            } else {
                XCTAssertNotEqual(c, .good, "daemon mount failed: \(r.stderr)")
                umount2(mnt, Int32(MNT_DETACH))
            }
            assertClean(r.stderr, "mount (daemon, \(c)) stderr")
            let logText = (try? String(contentsOfFile: cache + "/mount.log", encoding: .utf8)) ?? ""
            XCTAssertFalse(logText.isEmpty, "CACHE/mount.log has the daemon's trace output (\(c))")
            assertClean(logText, "CACHE/mount.log (\(c))")
            assertFilesClean(cache)
        }
    }
}
