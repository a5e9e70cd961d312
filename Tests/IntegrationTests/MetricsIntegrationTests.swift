import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A real mount's `/metrics` scrape, checked against Prometheus conventions by `promtool`.
extension MountIntegrationTests {
    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// `promtool check metrics` on `text`: nil when it passes, else its complaint.
    static func promtoolProblems(_ text: String) throws -> String? {
        guard let promtool else { throw XCTSkip("promtool not installed (Debian package prometheus); skipping the lint") }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("soak-metrics-\(UUID().uuidString)").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try Harness.run("/bin/sh", ["-c", "\"$0\" check metrics < \"$1\"", promtool, file])
        return r.status == 0 && r.stdout.isEmpty && r.stderr.isEmpty ? nil : "rc \(r.status): \(r.stdout)\(r.stderr)"
    }

    func testMetricsScrapeFollowsPrometheusConventions() throws {
        let sums = try upload(["m0.bin": 300_000, "m1.bin": 70_000], prefix: "met/")
        let port = freePort()
        let p = try mountForeground("met", ["--metrics-address", "127.0.0.1:\(port)", "--cache-size", "1GiB"])
        for (k, sum) in sums { XCTAssertEqual(try Harness.sha256(mnt + "/" + k), sum, k) }
        let response = scrape(port)
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 200"), response)
        let body = response.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        // Renamed: the evicted figure is a counter now.
        XCTAssertFalse(body.contains("soak_evicted_bytes "), body)
        for (family, type) in [("soak_cache_evicted_bytes_total", "counter"), ("soak_build_info", "gauge"),
                               ("soak_fetch_failures_total", "counter"), ("soak_read_bytes_total", "counter"),
                               ("soak_cache_capacity_bytes", "gauge"), ("process_cpu_seconds_total", "counter"),
                               ("process_resident_memory_bytes", "gauge"), ("process_open_fds", "gauge"),
                               ("process_start_time_seconds", "gauge"), ("process_virtual_memory_bytes", "gauge"),
                               ("soak_workers_cpu_seconds_total", "counter"), ("soak_workers_resident_memory_bytes", "gauge"),
                               ("soak_workers_processes", "gauge"), ("soak_fetch_first_byte_seconds", "histogram")] {
            XCTAssertTrue(body.contains("# TYPE \(family) \(type)\n"), "\(family) \(type)\n\(body)")
            XCTAssertTrue(body.contains("# HELP \(family) "), "HELP \(family)")
        }
        XCTAssertTrue(body.contains("soak_read_bytes_total 370000\n"), body)
        XCTAssertTrue(body.contains("soak_cache_capacity_bytes 1073741824"), body)
        XCTAssertTrue(body.contains("soak_build_info{version=\""), body)
        let gets = body.firstMatch(of: /soak_s3_requests_total\{operation="GetObject",status="ok"\} ([0-9]+)/).flatMap { Int($0.1) } ?? 0
        XCTAssertGreaterThanOrEqual(gets, 2, body)
        let workers = body.firstMatch(of: /\nsoak_workers_processes ([0-9.]+)/).flatMap { Double($0.1) } ?? 0
        XCTAssertGreaterThan(workers, 0, body)
        let rss = body.firstMatch(of: /\nprocess_resident_memory_bytes ([0-9.e+]+)/).flatMap { Double($0.1) } ?? 0
        XCTAssertGreaterThan(rss, 1_000_000, body)
        if let problems = try Self.promtoolProblems(body) { XCTFail("promtool check metrics: \(problems)\n\(body)") }
        kill(p.processIdentifier, SIGTERM)
        XCTAssertTrue(waitExit(p))
    }
}
