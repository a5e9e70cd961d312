/// `process_*` and `soak_workers_*` from /proc: this process's figures, and the sums over
/// child processes whose command line holds `__worker` (real children, spawned here).
import Engine
import Foundation
import Mount
import SoakCore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class ProcessMetricsTests: XCTestCase {
    private func scrape(_ m: MountMetrics) -> [String: Double] {
        m.update(engine: EngineStats(), hits: 0, misses: 0, cached: 0, evicted: 0)
        return prometheusSamples(m.render())
    }

    func testThisProcessFigures() throws {
        let m = MountMetrics(version: "t", commit: nil)
        let before = try XCTUnwrap(ProcessStats.read())
        let s = scrape(m)
        let after = try XCTUnwrap(ProcessStats.read())
        let cpu = try XCTUnwrap(s["process_cpu_seconds_total"])
        XCTAssertGreaterThanOrEqual(cpu, before.cpuSeconds)
        XCTAssertLessThanOrEqual(cpu, after.cpuSeconds)
        XCTAssertGreaterThan(try XCTUnwrap(s["process_resident_memory_bytes"]), 0)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(s["process_virtual_memory_bytes"]), try XCTUnwrap(s["process_resident_memory_bytes"]))
        XCTAssertGreaterThan(try XCTUnwrap(s["process_open_fds"]), 2, "stdin, stdout, stderr at least")
        XCTAssertEqual(try XCTUnwrap(s["process_start_time_seconds"]), before.startTime, accuracy: 0.01)
        XCTAssertLessThanOrEqual(try XCTUnwrap(s["process_start_time_seconds"]), Date().timeIntervalSince1970)

        // The counter follows the process's CPU time as it grows.
        var x: UInt64 = 1
        while ProcessStats.read()!.cpuSeconds < after.cpuSeconds + 0.05 { for i in 0..<10_000 { x = x &* 31 &+ UInt64(i) } }
        XCTAssertNotEqual(x, 0)
        let later = try XCTUnwrap(scrape(m)["process_cpu_seconds_total"])
        XCTAssertGreaterThanOrEqual(later, after.cpuSeconds + 0.05)
    }

    /// A child whose command line holds `__worker`, as the pool's workers do; `spin` burns
    /// some CPU first. It waits on its stdin (a shell builtin: no grandchild) and ends when
    /// that is closed.
    private func worker(spin: Bool) throws -> (Process, Pipe) {
        let p = Process(), stdin = Pipe()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        let work = spin ? "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; " : ""
        p.arguments = ["-c", work + "read x", "__worker"]
        p.standardInput = stdin
        try p.run()
        return (p, stdin)
    }

    /// Scrapes until `condition` holds (the children exec and start counting), at most 10 s.
    private func scrape(_ m: MountMetrics, until condition: ([String: Double]) -> Bool) -> [String: Double] {
        let deadline = Date().addingTimeInterval(10)
        var s = scrape(m)
        while !condition(s) && Date() < deadline {
            usleep(20_000)
            s = scrape(m)
        }
        return s
    }

    func testWorkersAreCountedAndTheirCPUTimeOnlyGrows() throws {
        let m = MountMetrics(version: "t", commit: nil)
        let first = scrape(m)
        let base = try XCTUnwrap(first["soak_workers_processes"])
        let cpu0 = try XCTUnwrap(first["soak_workers_cpu_seconds_total"])
        let children = [try worker(spin: true), try worker(spin: false)]
        defer { for (c, _) in children where c.isRunning { c.terminate() } }
        var s = scrape(m) { $0["soak_workers_processes"] == base + 2 && ($0["soak_workers_cpu_seconds_total"] ?? 0) >= cpu0 + 0.02 }
        XCTAssertEqual(s["soak_workers_processes"], base + 2)
        XCTAssertGreaterThan(try XCTUnwrap(s["soak_workers_resident_memory_bytes"]), 0)
        let live = try XCTUnwrap(s["soak_workers_cpu_seconds_total"])
        XCTAssertGreaterThanOrEqual(live, cpu0 + 0.02, "the spinning live worker's time, from /proc")

        for (c, stdin) in children {
            try stdin.fileHandleForWriting.close()
            c.waitUntilExit()
        }
        s = scrape(m) { $0["soak_workers_processes"] == base }
        XCTAssertEqual(s["soak_workers_processes"], base)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(s["soak_workers_cpu_seconds_total"]), live,
                                    "a reaped worker's time moves to getrusage; the sum does not drop")
    }
}
