/// `StallBounds`: floors before anything is learned, headroom × the 95th percentile of completed
/// transfers' times, the cap, the window, backoff on stalls, and no learning from stalls.
import Engine
import XCTest

final class StallBoundsTests: XCTestCase {
    func testStartsAtTheFloorsWithRoomForAColdStart() {
        var b = StallBounds()
        XCTAssertEqual(b.bound(.firstByte), StallBounds.coldFirstByte)
        XCTAssertEqual(b.bound(.gap), StallBounds.gapFloor)
        XCTAssertGreaterThan(StallBounds.coldFirstByte, StallBounds.firstByteFloor)
        for i in 1...StallBounds.warmSamples {
            XCTAssertEqual(b.bound(.firstByte), StallBounds.coldFirstByte, "after \(i - 1) completed transfers")
            b.learn(firstByte: 0.01, gap: nil)
        }
        XCTAssertEqual(b.bound(.firstByte), StallBounds.firstByteFloor, "warm: the learned bound alone")
        XCTAssertLessThan(StallBounds.firstByteFloor, StallBounds.cap)
        XCTAssertLessThan(StallBounds.gapFloor, StallBounds.cap)
    }

    func testFastTransfersKeepTheFloor() {
        var b = StallBounds()
        for _ in 0..<100 { b.learn(firstByte: 0.02, gap: 0.005) }
        XCTAssertEqual(b.bound(.firstByte), StallBounds.firstByteFloor)
        XCTAssertEqual(b.bound(.gap), StallBounds.gapFloor)
    }

    func testPhasesAreLearnedApart() {
        var b = StallBounds()
        // First bytes take 1 s, gaps are short: only the first-byte bound rises.
        for _ in 0..<20 { b.learn(firstByte: 1.0, gap: 0.01) }
        XCTAssertEqual(b.bound(.firstByte), StallBounds.headroom * 1.0, accuracy: 1e-9)
        XCTAssertEqual(b.bound(.gap), StallBounds.gapFloor)
        var c = StallBounds()
        for _ in 0..<20 { c.learn(firstByte: 0.01, gap: 0.75) }
        XCTAssertEqual(c.bound(.firstByte), StallBounds.firstByteFloor)
        XCTAssertEqual(c.bound(.gap), StallBounds.headroom * 0.75, accuracy: 1e-9)
    }

    func testScalesTheNinetyFifthPercentileNotTheMaximum() {
        var b = StallBounds()
        // 100 samples 0.01…1.00 s, of which the window keeps the last 64 (0.37…1.00): the 95th
        // percentile by nearest rank is the 61st of those, 0.97 s.
        for i in 1...100 { b.learn(firstByte: Double(i) / 100, gap: nil) }
        XCTAssertEqual(b.samples(.firstByte), StallBounds.window)
        XCTAssertEqual(b.bound(.firstByte), StallBounds.headroom * 0.97, accuracy: 1e-9)
        // One outlier among recent transfers does not set the bound.
        var c = StallBounds()
        for _ in 0..<40 { c.learn(firstByte: 0.5, gap: nil) }
        c.learn(firstByte: 4.5, gap: nil)
        XCTAssertEqual(c.bound(.firstByte), StallBounds.headroom * 0.5, accuracy: 1e-9)
    }

    func testOldTimesLeaveTheWindow() {
        var b = StallBounds()
        for _ in 0..<StallBounds.window { b.learn(firstByte: 2, gap: nil) }
        XCTAssertEqual(b.bound(.firstByte), StallBounds.headroom * 2, accuracy: 1e-9)
        // The network got faster: once the window has turned over, the bound follows it down.
        for _ in 0..<StallBounds.window { b.learn(firstByte: 0.3, gap: nil) }
        XCTAssertEqual(b.bound(.firstByte), StallBounds.headroom * 0.3, accuracy: 1e-9)
    }

    func testNeverAboveTheCap() {
        var b = StallBounds()
        for _ in 0..<10 { b.learn(firstByte: 30, gap: 60) }
        XCTAssertEqual(b.bound(.firstByte), StallBounds.cap)
        XCTAssertEqual(b.bound(.gap), StallBounds.cap)
    }

    func testEachStallOfAnOrderDoublesItsNextBound() {
        var b = StallBounds()
        XCTAssertEqual(b.bound(.gap, stalls: 1), 2 * StallBounds.gapFloor)
        XCTAssertEqual(b.bound(.gap, stalls: 2), 4 * StallBounds.gapFloor)
        XCTAssertEqual(b.bound(.firstByte, stalls: 3), 8 * StallBounds.coldFirstByte)
        XCTAssertEqual(b.bound(.gap, stalls: 40), StallBounds.cap, "never above the cap")
        XCTAssertEqual(b.bound(.gap, stalls: -1), StallBounds.gapFloor)
        // From the learned bound, not from the floor.
        for _ in 0..<10 { b.learn(firstByte: 0.5, gap: nil) }
        XCTAssertEqual(b.bound(.firstByte, stalls: 1), 2 * StallBounds.headroom * 0.5, accuracy: 1e-9)
        XCTAssertEqual(b.bound(.firstByte), StallBounds.headroom * 0.5, accuracy: 1e-9, "other orders keep it")
    }

    func testAServerSlowerThanTheFloorIsReachedByRetries() {
        // Every first byte takes 5 s; nothing has completed, so the bound is the cold one. The
        // attempts of one order are cut at 2, 4 s, and the third waits 8 s: it completes.
        var b = StallBounds()
        var stalls = 0
        while b.bound(.firstByte, stalls: stalls) < 5 { stalls += 1 }
        XCTAssertEqual(stalls, 2)
        b.learn(firstByte: 5, gap: nil)
        // From then on every transfer waits long enough at its first attempt.
        XCTAssertGreaterThan(b.bound(.firstByte), 5)
    }

    func testIgnoresImpossibleTimes() {
        var b = StallBounds()
        b.learn(firstByte: .nan, gap: -1)
        b.learn(firstByte: .infinity, gap: .nan)
        XCTAssertEqual(b.samples(.firstByte), 0)
        XCTAssertEqual(b.samples(.gap), 0)
        XCTAssertEqual(b.bound(.firstByte), StallBounds.coldFirstByte)
    }
}
