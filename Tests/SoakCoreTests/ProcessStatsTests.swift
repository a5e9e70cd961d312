import Foundation
import SoakCore
import XCTest

final class ProcessStatsTests: XCTestCase {
    func testParsesAStatLineWhoseNameHoldsSpacesAndParentheses() throws {
        // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
        let line = "4242 (soak (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 123456789 2048 18446744073709551615"
        let s = try XCTUnwrap(ProcessStats.parse(stat: line, openFDs: 7, ticksPerSecond: 100, pageSize: 4096, bootTime: 1_700_000_000))
        XCTAssertEqual(s.cpuSeconds, 3.0, accuracy: 1e-9)
        XCTAssertEqual(s.residentBytes, 2048 * 4096)
        XCTAssertEqual(s.virtualBytes, 123_456_789)
        XCTAssertEqual(s.startTime, 1_700_000_010, accuracy: 1e-9)
        XCTAssertEqual(s.openFDs, 7)
    }

    func testRejectsTruncatedLines() {
        XCTAssertNil(ProcessStats.parse(stat: "1 (a) S 0 1", openFDs: nil, ticksPerSecond: 100, pageSize: 4096, bootTime: 0))
        XCTAssertNil(ProcessStats.parse(stat: "garbage", openFDs: nil, ticksPerSecond: 100, pageSize: 4096, bootTime: 0))
    }

    func testReadsThisProcess() throws {
        let s = try XCTUnwrap(ProcessStats.read())
        XCTAssertGreaterThan(s.residentBytes, 0)
        XCTAssertGreaterThan(s.openFDs ?? 0, 0)
        XCTAssertLessThanOrEqual(s.startTime, Date().timeIntervalSince1970 + 1)
        XCTAssertGreaterThan(s.startTime, Date().timeIntervalSince1970 - 86_400 * 365)
    }

    func testFindsItsChildrenByArgument() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "sleep 10; :", "__soak_probe"]
        try p.run()
        defer { p.terminate(); p.waitUntilExit() }
        var found: [pid_t] = []
        let deadline = Date().addingTimeInterval(5)
        while found.isEmpty && Date() < deadline {
            found = ProcessStats.children(withArgument: "__soak_probe")
            if found.isEmpty { usleep(20_000) }
        }
        XCTAssertEqual(found, [p.processIdentifier])
        XCTAssertEqual(ProcessStats.children(withArgument: "__no_such_argument"), [])
        XCTAssertNotNil(ProcessStats.read(pid: p.processIdentifier))
    }
}
