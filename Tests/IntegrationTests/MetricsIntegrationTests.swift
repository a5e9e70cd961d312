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
        // The coordinator's own requests: the listing at mount time.
        let lists = body.firstMatch(of: /soak_s3_requests_total\{operation="ListObjectsV2",status="ok"\} ([0-9]+)/)
            .flatMap { Int($0.1) } ?? 0
        XCTAssertGreaterThanOrEqual(lists, 1, body)
        let workers = body.firstMatch(of: /\nsoak_workers_processes ([0-9.]+)/).flatMap { Double($0.1) } ?? 0
        XCTAssertGreaterThan(workers, 0, body)
        let rss = body.firstMatch(of: /\nprocess_resident_memory_bytes ([0-9.e+]+)/).flatMap { Double($0.1) } ?? 0
        XCTAssertGreaterThan(rss, 1_000_000, body)
        // The Grafana dashboard asks only for families this scrape has.
        let dashboard = try String(contentsOfFile: Harness.repoRoot + "/deploy/grafana/soak.json", encoding: .utf8)
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(dashboard.utf8)))
        let names = Set(dashboard.matches(of: /\b((?:soak|process)_[a-z_]+)\b/).map { String($0.1) })
        XCTAssertGreaterThan(names.count, 10)
        for name in names {
            let family = name.replacing(/_(bucket|sum|count)$/, with: "")
            XCTAssertTrue(body.contains("# TYPE \(family) "), "the dashboard's \(name) is not in the scrape")
        }
        let check = try Harness.run(Harness.repoRoot + "/scripts/check-dashboard", [])  // PromQL syntax, with promtool
        XCTAssertEqual(check.status, 0, check.stderr)
        if let problems = try Self.promtoolProblems(body) { XCTFail("promtool check metrics: \(problems)\n\(body)") }
        kill(p.processIdentifier, SIGTERM)
        XCTAssertTrue(waitExit(p))
    }
}

/// `soak download --metrics-file`: a node_exporter textfile with the job's totals.
extension DownloadIntegrationTests {
    func testDownloadWritesAMetricsFileWithItsTotals() throws {
        _ = try upload(["a.bin": 300_000, "b.bin": 70_000, "c/d.bin": 1], prefix: "mf/")
        let dir = work + "/textfile"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/soak.prom"
        let r = try download("mf/", work + "/out", ["--metrics-file", file])
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let c = "{command=\"download\"}"
        XCTAssertTrue(text.contains("soak_job_objects_done_total\(c) 3\n"), text)
        XCTAssertTrue(text.contains("soak_job_bytes_done_total\(c) 370001\n"), text)
        XCTAssertTrue(text.contains("soak_job_objects\(c) 3.0\n"), text)
        XCTAssertTrue(text.contains("soak_job_finished\(c) 1.0\n"), text)
        XCTAssertTrue(text.contains("soak_fetch_failures_total\(c) 0\n"), text)
        let fetched = text.matches(of: /soak_fetched_bytes_total\{command="download",lane="[a-z]+"\} ([0-9]+)/)
            .compactMap { Int64($0.1) }.reduce(0, +)
        XCTAssertEqual(fetched, 370_001, text)
        let gets = text.firstMatch(of: /soak_s3_requests_total\{command="download",operation="GetObject",status="ok"\} ([0-9]+)/)
            .flatMap { Int($0.1) } ?? 0
        XCTAssertGreaterThanOrEqual(gets, 2, text)
        XCTAssertTrue(text.contains("# TYPE process_cpu_seconds_total counter\n"), text)
        // The workers have exited by the end; their CPU time still counts (reaped children's).
        let workerCPU = text.firstMatch(of: /\nsoak_workers_cpu_seconds_total ([0-9.e-]+)/).flatMap { Double($0.1) } ?? 0
        XCTAssertGreaterThan(workerCPU, 0, text)
        // Only the file itself: the temp file was renamed over it.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["soak.prom"])
        if let problems = try MountIntegrationTests.promtoolProblems(text) { XCTFail("promtool check metrics: \(problems)\n\(text)") }
    }

    func testPrewarmWritesAMetricsFileWithItsTotals() throws {
        _ = try upload(["a.bin": 300_000, "b.bin": 70_000], prefix: "pf/")
        let file = work + "/prewarm.prom"
        let r = try Harness.soak(["prewarm", "s3://\(bucket)/pf", "--endpoint-url", endpoint, "--cache-dir", work + "/cache",
                                  "--metrics-file", file])
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let c = "{command=\"prewarm\"}"
        XCTAssertTrue(text.contains("soak_job_objects_done_total\(c) 2\n"), text)
        XCTAssertTrue(text.contains("soak_job_bytes_done_total\(c) 370000\n"), text)
        XCTAssertTrue(text.contains("soak_fetched_bytes_total{command=\"prewarm\",lane=\"bulk\"} 370000\n"), text)
        XCTAssertTrue(text.contains("soak_job_finished\(c) 1.0\n"), text)
        if let problems = try MountIntegrationTests.promtoolProblems(text) { XCTFail("promtool check metrics: \(problems)\n\(text)") }
    }

    func testAnUnwritableMetricsFileIsAUsageError() throws {
        _ = try upload(["a.bin": 10], prefix: "mf/")
        let r = try download("mf/", work + "/out", ["--metrics-file", work + "/no/such/dir/soak.prom"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("cannot write --metrics-file"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/out/a.bin"))
    }
}
