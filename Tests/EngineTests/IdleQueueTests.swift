import Foundation
import XCTest
@testable import Engine

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

    /// Under constant load each job runs at most `maxDeferral` after it was queued: the queue
    /// drains instead of holding every job for a full deferral in turn.
    func testAlwaysBusyStillDrainsEachJobAtMostItsDeferralLate() {
        let busy = Flag()
        busy.set(true)
        let q = IdleQueue(name: "t", background: { busy.get() }, maxDeferral: 0.3)
        let t0 = Date()
        for i in 0..<5 { q.async { busy.record(i) } }
        while busy.runs.count < 5 && Date().timeIntervalSince(t0) < 5 { usleep(10_000) }
        XCTAssertEqual(busy.runs, [0, 1, 2, 3, 4])
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.2, "5 jobs queued together wait one deferral, not five")
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
