/// `WorkQueue`: strict-priority lanes, FIFO within a lane, and the delayed-retry heap.
import Engine
import XCTest

private extension WorkQueue {
    /// Pops everything ready at `now`, in order.
    mutating func drain(now: Double) -> [(Item, Lane)] {
        var out: [(Item, Lane)] = []
        while let x = pop(now: now) { out.append(x) }
        return out
    }
}

final class WorkQueueTests: XCTestCase {
    func testEmptyQueue() {
        var q = WorkQueue<Int>()
        XCTAssertTrue(q.isEmpty)
        XCTAssertEqual(q.readyCount, 0)
        XCTAssertEqual(q.delayedCount, 0)
        XCTAssertNil(q.nextDue)
        XCTAssertNil(q.topLane())
        XCTAssertNil(q.pop(now: 0))
        XCTAssertNil(q.remove { _ in true })
    }

    func testLanesAreStrictPriorities() {
        var q = WorkQueue<String>()
        // Pushed lowest priority first, so arrival order cannot explain the result.
        q.push("bulk1", lane: .bulk)
        q.push("ahead1", lane: .readAhead)
        q.push("bulk2", lane: .bulk)
        q.push("urgent1", lane: .urgent)
        q.push("ahead2", lane: .readAhead)
        XCTAssertEqual(q.topLane(), .urgent)

        let first = q.pop(now: 0)
        XCTAssertEqual(first?.0, "urgent1")
        XCTAssertEqual(first?.1, .urgent)
        XCTAssertEqual(q.topLane(), .readAhead)

        // An urgent item arriving mid-way overtakes the waiting read-ahead and bulk work.
        q.push("urgent2", lane: .urgent)
        let rest = q.drain(now: 0)
        XCTAssertEqual(rest.map(\.0), ["urgent2", "ahead1", "ahead2", "bulk1", "bulk2"])
        XCTAssertEqual(rest.map(\.1), [.urgent, .readAhead, .readAhead, .bulk, .bulk])
        XCTAssertTrue(q.isEmpty)
        XCTAssertNil(q.topLane())
    }

    func testFIFOWithinALane() {
        var q = WorkQueue<Int>()
        for i in 0..<100 { q.push(i, lane: .bulk) }
        XCTAssertEqual(q.drain(now: 0).map(\.0), Array(0..<100))
    }

    func testLaneOrderIsUrgentReadAheadBulk() {
        XCTAssertEqual(Lane.allCases, [.urgent, .readAhead, .bulk])
        XCTAssertLessThan(Lane.urgent, Lane.readAhead)
        XCTAssertLessThan(Lane.readAhead, Lane.bulk)
        XCTAssertEqual(Lane.allCases.sorted(), [.urgent, .readAhead, .bulk])
    }

    func testPushFrontGoesAheadOfItsLaneOnly() {
        var q = WorkQueue<String>()
        q.push("b1", lane: .bulk)
        q.push("b2", lane: .bulk)
        q.push("u1", lane: .urgent)
        q.pushFront("rescued", lane: .bulk)
        XCTAssertEqual(q.drain(now: 0).map(\.0), ["u1", "rescued", "b1", "b2"])

        q.pushFront("x", lane: .readAhead)
        q.pushFront("y", lane: .readAhead)
        XCTAssertEqual(q.drain(now: 0).map(\.0), ["y", "x"])
    }

    func testDelayedItemsAreInvisibleUntilDue() {
        var q = WorkQueue<String>()
        q.push("retry", lane: .urgent, due: 10)
        XCTAssertFalse(q.isEmpty)
        XCTAssertEqual(q.readyCount, 0)
        XCTAssertEqual(q.delayedCount, 1)
        XCTAssertEqual(q.count(in: .urgent), 0)
        XCTAssertNil(q.topLane())
        XCTAssertEqual(q.nextDue, 10)
        XCTAssertNil(q.pop(now: 9.999))
        XCTAssertEqual(q.delayedCount, 1, "popping early must not lose the delayed item")

        let x = q.pop(now: 10)
        XCTAssertEqual(x?.0, "retry")
        XCTAssertEqual(x?.1, .urgent)
        XCTAssertTrue(q.isEmpty)
        XCTAssertNil(q.nextDue)
    }

    func testDueItemsJoinTheBackOfTheirLane() {
        var q = WorkQueue<String>()
        q.push("retry", lane: .bulk, due: 5)
        q.push("b1", lane: .bulk)
        q.push("b2", lane: .bulk)
        q.push("a1", lane: .readAhead)
        // Not yet due: ready work goes first.
        XCTAssertEqual(q.pop(now: 1)?.0, "a1")
        // Due now: appended behind b2, and it does not jump lanes.
        q.release(now: 5)
        XCTAssertEqual(q.delayedCount, 0)
        XCTAssertEqual(q.count(in: .bulk), 3)
        XCTAssertEqual(q.count(in: .readAhead), 0)
        XCTAssertEqual(q.drain(now: 5).map(\.0), ["b1", "b2", "retry"])
    }

    func testDelayedItemsReleaseInDueOrderThenInsertionOrder() {
        var q = WorkQueue<String>()
        q.push("late", lane: .bulk, due: 30)
        q.push("early", lane: .bulk, due: 10)
        q.push("tie-first", lane: .bulk, due: 20)
        q.push("tie-second", lane: .bulk, due: 20)
        XCTAssertEqual(q.nextDue, 10)

        q.release(now: 20)
        XCTAssertEqual(q.count(in: .bulk), 3)
        XCTAssertEqual(q.delayedCount, 1)
        XCTAssertEqual(q.nextDue, 30)
        XCTAssertEqual(q.drain(now: 20).map(\.0), ["early", "tie-first", "tie-second"])

        XCTAssertNil(q.pop(now: 29))
        XCTAssertEqual(q.pop(now: 1000)?.0, "late")
        XCTAssertNil(q.nextDue)
    }

    func testReleasedDelayedItemsRespectLanePriority() {
        var q = WorkQueue<String>()
        q.push("bulk-retry", lane: .bulk, due: 1)
        q.push("urgent-retry", lane: .urgent, due: 2)
        q.push("ahead", lane: .readAhead)
        XCTAssertEqual(q.drain(now: 3).map(\.0), ["urgent-retry", "ahead", "bulk-retry"])
    }

    func testRemoveWherePromotesAcrossLanes() {
        var q = WorkQueue<Int>()
        for i in [1, 2, 3] { q.push(i, lane: .bulk) }
        for i in [10, 20] { q.push(i, lane: .readAhead) }
        q.push(99, lane: .bulk, due: 100)

        // Promote 2 from bulk to urgent.
        let found = q.remove { $0 == 2 }
        XCTAssertEqual(found?.0, 2)
        XCTAssertEqual(found?.1, .bulk)
        XCTAssertEqual(q.count(in: .bulk), 2)
        q.push(found!.0, lane: .urgent)

        // First match in lane-priority order: 20 (readAhead) before 3 (bulk, pushed earlier).
        let hit = q.remove { $0 == 3 || $0 == 20 }
        XCTAssertEqual(hit?.0, 20)
        XCTAssertEqual(hit?.1, .readAhead)

        // Delayed items are not candidates.
        XCTAssertNil(q.remove { $0 == 99 })
        XCTAssertEqual(q.delayedCount, 1)

        XCTAssertEqual(q.drain(now: 0).map(\.0), [2, 10, 1, 3])
    }

    func testRemoveTakesTheFirstMatchWithinALane() {
        var q = WorkQueue<String>()
        for s in ["a", "bb", "cc", "d"] { q.push(s, lane: .bulk) }
        XCTAssertEqual(q.remove { $0.count == 2 }?.0, "bb")
        XCTAssertEqual(q.drain(now: 0).map(\.0), ["a", "cc", "d"])
    }

    func testCounts() {
        var q = WorkQueue<Int>()
        q.push(1, lane: .urgent)
        q.push(2, lane: .bulk)
        q.push(3, lane: .bulk)
        q.pushFront(4, lane: .readAhead)
        q.push(5, lane: .bulk, due: 7)
        q.push(6, lane: .urgent, due: 8)
        XCTAssertEqual(q.count(in: .urgent), 1)
        XCTAssertEqual(q.count(in: .readAhead), 1)
        XCTAssertEqual(q.count(in: .bulk), 2)
        XCTAssertEqual(q.readyCount, 4)
        XCTAssertEqual(q.delayedCount, 2)
        XCTAssertFalse(q.isEmpty)

        _ = q.pop(now: 0)
        XCTAssertEqual(q.count(in: .urgent), 0)
        XCTAssertEqual(q.readyCount, 3)

        q.release(now: 7.5)
        XCTAssertEqual(q.count(in: .bulk), 3)
        XCTAssertEqual(q.delayedCount, 1)
        XCTAssertEqual(q.readyCount, 4)
        XCTAssertEqual(q.nextDue, 8)

        _ = q.drain(now: 8)
        XCTAssertEqual(q.readyCount, 0)
        XCTAssertEqual(q.delayedCount, 0)
        XCTAssertTrue(q.isEmpty)
    }

    func testIsAValueType() {
        var a = WorkQueue<Int>()
        a.push(1, lane: .bulk)
        var b = a
        _ = b.pop(now: 0)
        XCTAssertEqual(a.readyCount, 1)
        XCTAssertEqual(b.readyCount, 0)
    }
}
