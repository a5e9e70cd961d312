import Foundation
import SoakCore
import XCTest

/// Retries are not failures: at the default log level a run prints no line per retry, a run
/// whose retries succeed prints only its summary, and a request that runs out of attempts fails
/// with one line naming how many it made.
final class RetryLoggingIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    var proxies: [Process] = []

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket("retrylog" + String(name.split(separator: " ").last!.prefix(12)).lowercased()
            .filter { $0.isLetter || $0.isNumber })
        work = try Harness.tempDir("retrylog")
    }

    override func tearDownWithError() throws {
        for p in proxies where p.isRunning { p.terminate(); p.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: work)
    }

    /// A loopback port nothing listens on: bound, read back and closed again.
    func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        XCTAssertTrue(ok, "bind a loopback port")
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    func lines(_ s: String) -> [String] { s.split(separator: "\n").map(String.init).filter { !$0.isEmpty } }

    /// `MAX_RETRIES=4` against a closed port: download and prewarm each print exactly one line,
    /// an error naming the 4 attempts, and exit 1 (a run that failed). At debug level the three
    /// retries are there.
    func testUnreachableEndpointFailsWithOneLineNamingTheAttempts() throws {
        let url = "http://127.0.0.1:\(try closedPort())"
        let env = ["MAX_RETRIES": "4", "RETRY_DELAY": "0.05"]
        let runs: [(String, [String])] = [
            ("download", ["download", "s3://b/p", work + "/dest", "--endpoint-url", url]),
            ("prewarm", ["prewarm", "s3://b/p", "--cache-dir", work + "/cache", "--endpoint-url", url]),
        ]
        for (what, args) in runs {
            let r = try Harness.soak(args, env: env, timeout: 60)
            XCTAssertEqual(r.status, 1, "\(what): a run that could not reach S3 failed: \(r.stderr)")
            let out = lines(r.stderr)
            XCTAssertEqual(out.count, 1, "\(what): one line, not one per attempt:\n\(r.stderr)")
            let line = out.first ?? ""
            XCTAssertTrue(line.hasPrefix("soak: error: "), "\(what): \(line)")
            XCTAssertTrue(line.contains("after 4 attempts"), "\(what): the error names the attempts: \(line)")
            XCTAssertTrue(line.lowercased().contains("connect"), "\(what): the error says why: \(line)")

            let d = try Harness.soak(args + ["--log-level", "debug"], env: env, timeout: 60)
            XCTAssertEqual(d.status, 1, d.stderr)
            // Log lines start with their RFC 3339 timestamp, then the `soak: LEVEL:` prefix.
            let retries = lines(d.stderr).map(SoakLogging.strippingTimestamp)
                .filter { $0.hasPrefix("soak: debug: ") && $0.contains("retrying") }
            XCTAssertEqual(retries.count, 3, "\(what): each retry is a debug line:\n\(d.stderr)")
        }
    }

    /// Starts scripts/faultproxy.py in front of the test server, faulting every request it may
    /// until a key has had `perKey` faults; returns its URL and its log (one line per fault).
    func startFaultProxy(faults: String, perKey: Int) throws -> (url: String, log: String) {
        let log = work + "/faultproxy-\(proxies.count).log"
        let (p, port) = try Harness.startPortScript("faultproxy.py", ["--upstream", endpoint,
            "--listen-port", "0", "--seed", "7", "--rate", "1", "--faults", faults,
            "--max-per-request", String(perKey), "--max-per-key", String(perKey)], log: log)
        proxies.append(p)
        return ("http://127.0.0.1:\(port)", log)
    }

    /// Every request (the listing and each GET) fails twice, with a 500, a reset or a cut body,
    /// and then succeeds, for a download and for a prewarm (each through a proxy of its own):
    /// the run succeeds, every byte is right, and stderr holds the summary and nothing else: no
    /// line per retry, none per retried object.
    func testRetriesThatSucceedPrintNothingAtTheDefaultLevel() throws {
        try Harness.fixture(["mkbucket", bucket])
        var files: [String: Int] = ["split.bin": 20_000_000]
        for i in 0..<40 { files["f/obj\(i).bin"] = 50_000 + i * 1_000 }
        let sums = try Harness.uploadTree(files, bucket: bucket, prefix: "data/", work: work)
        let dest = work + "/dest", cache = work + "/cache"
        for tool in ["download", "prewarm"] {
            let (url, log) = try startFaultProxy(faults: "500,reset-before,reset-mid,truncate", perKey: 2)
            let args = tool == "download" ? ["download", "s3://\(bucket)/data/", dest, "--endpoint-url", url]
                : ["prewarm", "s3://\(bucket)/data/", "--cache-dir", cache, "--endpoint-url", url]
            let r = try Harness.soak(args, env: ["MAX_RETRIES": "6", "RETRY_DELAY": "0.05"], timeout: 180)
            XCTAssertEqual(r.status, 0, "\(tool): \(r.stderr)")
            if tool == "download" {
                for (key, sum) in sums { XCTAssertEqual(try? Harness.sha256(dest + "/" + key), sum, key) }
            } else {
                XCTAssertTrue(r.stderr.contains("\(files.count) fetched, 0 already cached"), r.stderr)
            }
            let faults = lines((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").filter { $0.hasPrefix("faultproxy: #") }
            XCTAssertGreaterThanOrEqual(faults.count, 2 * files.count, "\(tool): each GET was faulted twice")
            XCTAssertEqual(faults.filter { $0.contains("list-type=2") }.count, 2, "\(tool): the listing was faulted twice")
            // Progress lines (off a terminal, every 5 s of a slow run) are not about retries.
            let out = lines(r.stderr).filter { !$0.contains(" soak: progress: ") }
            XCTAssertEqual(out.count, 1, "\(tool): only the summary line at the default level:\n\(r.stderr)")
            XCTAssertTrue(out.first?.hasPrefix("s3://\(bucket)/data/") == true, r.stderr)
        }
    }
}
