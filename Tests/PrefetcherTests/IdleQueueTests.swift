import Foundation
import XCTest
@testable import Prefetcher

/// MD5 checks of a mount wait while fetches are under way, and still run in the end.
final class IdleQueueTests: XCTestCase {
    final class Flag: @unchecked Sendable {
        let lock = NSLock()
        var value = false
        var ran: [Int] = []
        func set(_ v: Bool) { lock.lock(); value = v; lock.unlock() }
        func get() -> Bool { lock.lock(); defer { lock.unlock() }; return value }
        func record(_ i: Int) { lock.lock(); ran.append(i); lock.unlock() }
        var runs: [Int] { lock.lock(); defer { lock.unlock() }; return ran }
    }

    func testJobsWaitWhileBusyThenRunInOrder() {
        let busy = Flag()
        busy.set(true)
        let q = IdleQueue(name: "t", background: { busy.get() })
        for i in 0..<3 { q.async { busy.record(i) } }
        Thread.sleep(forTimeInterval: 0.4)
        XCTAssertEqual(busy.runs, [], "held while busy")
        busy.set(false)
        let deadline = Date().addingTimeInterval(5)
        while busy.runs.count < 3 && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(busy.runs, [0, 1, 2])
        q.stop()
    }

    func testStopRunsWhatIsQueuedEvenWhileBusy() {
        let busy = Flag()
        busy.set(true)
        let q = IdleQueue(name: "t", background: { busy.get() })
        q.async { busy.record(7) }
        q.stop()
        XCTAssertEqual(busy.runs, [7])
    }

    func testForegroundQueueRunsAtOnce() {
        let f = Flag()
        let q = IdleQueue(name: "t", background: nil)
        q.async { f.record(1) }
        q.stop()
        XCTAssertEqual(f.runs, [1])
    }
}
