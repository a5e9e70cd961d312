import Crypto
import Foundation
import XCTest

/// Shared plumbing for tests against a real SeaweedFS (started by `scripts/test`).
///
/// Without `SOAK_TEST_ENDPOINT` the tests skip locally, but fail under CI=true: in CI they
/// must run.
enum Harness {
    static let env = ProcessInfo.processInfo.environment
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func requireServer() throws -> String {
        if let e = env["SOAK_TEST_ENDPOINT"], !e.isEmpty { return e }
        if env["CI"] == "true" {
            XCTFail("SOAK_TEST_ENDPOINT is not set under CI: integration tests must run (use scripts/test)")
        }
        throw XCTSkip("SOAK_TEST_ENDPOINT not set; run scripts/test to start SeaweedFS")
    }

    static var soakBinary: String {
        if let b = env["SOAK_BIN"], !b.isEmpty { return b }
        return repoRoot + "/.build/debug/soak"
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var uncaughtSignal: Bool
    }

    /// Runs a command to completion (bounded by `timeout`), capturing output.
    @discardableResult
    static func run(_ exe: String, _ args: [String], env extra: [String: String] = [:], timeout: Double = 120,
                    onStart: ((Process) -> Void)? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var e = env
        for (k, v) in extra { e[k] = v }
        p.environment = e
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("soak-out-\(UUID().uuidString)")
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("soak-err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        onStart?(p)
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTFail("\(exe) \(args) did not finish within \(timeout) s")
        }
        p.waitUntilExit()
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return Result(status: p.terminationStatus, stdout: out, stderr: err,
                      uncaughtSignal: p.terminationReason == .uncaughtSignal)
    }

    static func soak(_ args: [String], env: [String: String] = [:], timeout: Double = 120,
                     onStart: ((Process) -> Void)? = nil) throws -> Result {
        try run(soakBinary, args, env: env, timeout: timeout, onStart: onStart)
    }

    static func fixture(_ args: [String]) throws {
        let r = try run("/usr/bin/env", ["python3", repoRoot + "/scripts/s3fixture.py"] + args, timeout: 300)
        if r.status != 0 { throw NSError(domain: "fixture", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: r.stderr]) }
    }

    /// Writes `files` (relative key → size) into `source` (default: a fresh directory in `work`)
    /// and uploads the tree to `bucket` under `prefix` in one go; returns relative key → sha256.
    static func uploadTree(_ files: [String: Int], bucket: String, prefix: String, work: String,
                           source: String? = nil, seed: UInt64 = 1) throws -> [String: String] {
        let src = source ?? work + "/src-\(UUID().uuidString.prefix(6))"
        var sums: [String: String] = [:]
        for (i, (key, size)) in files.sorted(by: { $0.key < $1.key }).enumerated() {
            let path = src + "/" + key
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try makeFile(path, size: size, seed: seed &+ UInt64(i))
            sums[key] = try sha256(path)
        }
        try fixture(["putdir", bucket, prefix, src])
        return sums
    }

    /// Starts one of scripts/' Python servers (`s3front.py`, `faultproxy.py`), which bind port 0
    /// and print `PORT=N` as their first line; stderr goes to `log`. Returns the running process
    /// (the caller stops it) and the port.
    static func startPortScript(_ script: String, _ args: [String], log: String) throws -> (Process, String) {
        FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repoRoot + "/scripts/" + script] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try p.run()
        var first = Data()
        while !first.contains(0x0A) {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            first.append(d)
        }
        let text = String(decoding: first, as: UTF8.self)
        guard let port = text.firstMatch(of: /PORT=([0-9]+)/).map({ String($0.1) }) else {
            p.terminate()
            throw NSError(domain: script, code: 1, userInfo: [NSLocalizedDescriptionKey: "did not start: \(text)"])
        }
        return (p, port)
    }

    static func uniqueBucket(_ name: String) -> String {
        "soak-it-\(name)-\(UInt32.random(in: 0...UInt32.max))"
    }

    static func tempDir(_ name: String) throws -> String {
        let d = NSTemporaryDirectory() + "soak-it-\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Deterministic pseudo-random bytes written straight to a file (never all in memory).
    static func makeFile(_ path: String, size: Int, seed: UInt64) throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? h.close() }
        var state = seed &+ 0x9E3779B97F4A7C15
        var left = size
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while left > 0 {
            let n = min(left, chunk.count)
            for i in stride(from: 0, to: n, by: 8) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                var v = state
                for j in 0..<min(8, n - i) { chunk[i + j] = UInt8(truncatingIfNeeded: v); v >>= 8 }
            }
            try h.write(contentsOf: chunk[0..<n])
            left -= n
        }
    }

    static func sha256(_ path: String) throws -> String {
        let h = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? h.close() }
        var hasher = SHA256()
        while let d = try h.read(upToCount: 1 << 20), !d.isEmpty { hasher.update(data: d) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Live child processes of `pid` (worker processes of a soak coordinator).
    static func children(of pid: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var out: [pid_t] = []
        for e in entries {
            guard let child = pid_t(e), let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            if fields.count > 1, fields[0] != "Z", pid_t(fields[1]) == pid { out.append(child) }
        }
        return out
    }

    /// The first child process (a worker) of `pid` to appear within `seconds`.
    static func firstChild(of pid: pid_t, within seconds: Double) -> pid_t? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            usleep(100_000)
            if let w = children(of: pid).first { return w }
        }
        return nil
    }

    static func processAlive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }
}
