import Engine
import XCTest
import SoakCore

final class RateSplitTests: XCTestCase {
    func testNoCapMeansNoLimit() {
        XCTAssertNil(RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: nil, workers: 4, transfersPerWorker: 8))
        for bogus in [0.0, -5, .nan, .infinity] {
            XCTAssertNil(RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: bogus, workers: 4, transfersPerWorker: 8))
        }
    }

    func testSplitsEvenlyOverAllTransfers() {
        // 100 MB/s over 4 workers × 5 transfers = 5 MB/s each.
        XCTAssertEqual(RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: 100_000_000, workers: 4,
                                                           transfersPerWorker: 5), 5_000_000)
        // Rounds down so the total never exceeds the cap.
        let each = RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: 1_000_000, workers: 3, transfersPerWorker: 7)!
        XCTAssertEqual(each, 47_619)
        XCTAssertLessThanOrEqual(each * 21, 1_000_000)
    }

    func testResplitsWhenThePoolChanges() {
        let a = RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: 64e6, workers: 2, transfersPerWorker: 8)!
        let b = RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: 64e6, workers: 4, transfersPerWorker: 8)!
        XCTAssertEqual(a, 2 * b)
    }

    func testFloorAndDegenerateCounts() {
        let floor = RateSplit.minimumPerTransferBytesPerSecond
        XCTAssertEqual(RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: 1000, workers: 64, transfersPerWorker: 16), floor)
        XCTAssertEqual(RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: 1, workers: 1, transfersPerWorker: 1), floor)
        // Zero or negative counts are treated as one (never divide by zero, never return 0 = unlimited).
        XCTAssertEqual(RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: 8e6, workers: 0, transfersPerWorker: 0), 8_000_000)
        XCTAssertEqual(RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: 8e6, workers: -2, transfersPerWorker: 4), 2_000_000)
        XCTAssertEqual(RateSplit.perTransferBytesPerSecond(maxBytesPerSecond: 1e300, workers: 1, transfersPerWorker: 1), Int64.max)
    }
}

final class TokenBucketTests: XCTestCase {
    private func bucket(rate: Double, burst: Double, now: Double = 0) -> TokenBucket {
        try! TokenBucket(rate: rate, burst: burst, now: now)
    }

    func testStartsFullAndRefillsAtRateUpToBurst() {
        var b = bucket(rate: 10, burst: 5)
        XCTAssertEqual(b.available(now: 0), 5)
        XCTAssertTrue(b.tryTake(5, now: 0))
        XCTAssertEqual(b.available(now: 0), 0)
        XCTAssertEqual(b.available(now: 0.2), 2, accuracy: 1e-9)
        XCTAssertEqual(b.available(now: 100), 5)   // capped at burst
    }

    func testTryTakeIsAllOrNothing() {
        var b = bucket(rate: 1, burst: 3)
        XCTAssertFalse(b.tryTake(4, now: 0))
        XCTAssertEqual(b.available(now: 0), 3)
        XCTAssertTrue(b.tryTake(2, now: 0))
        XCTAssertFalse(b.tryTake(2, now: 0))
        XCTAssertTrue(b.tryTake(2, now: 1))
        XCTAssertTrue(b.tryTake(0, now: 1))
    }

    func testReserveReturnsTheWaitAndQueuesLaterCallers() {
        var b = bucket(rate: 100, burst: 50)
        XCTAssertEqual(b.reserve(50, now: 0), 0)
        XCTAssertEqual(b.reserve(100, now: 0), 1, accuracy: 1e-9)     // debt of 100 at 100/s
        XCTAssertEqual(b.reserve(50, now: 0), 1.5, accuracy: 1e-9)    // behind the debt
        XCTAssertEqual(b.reserve(10, now: 1.5), 0.1, accuracy: 1e-9)
        XCTAssertEqual(b.timeUntilAvailable(10, now: 1.6), 0.1, accuracy: 1e-9)
    }

    func testReserveLargerThanBurst() {
        var b = bucket(rate: 10, burst: 1)
        XCTAssertEqual(b.reserve(21, now: 0), 2, accuracy: 1e-9)
        XCTAssertEqual(b.timeUntilAvailable(2, now: 0), .infinity)
    }

    func testTimeGoingBackwardsAddsNothing() {
        var b = bucket(rate: 10, burst: 10, now: 100)
        XCTAssertTrue(b.tryTake(10, now: 100))
        XCTAssertEqual(b.available(now: 50), 0)
        XCTAssertEqual(b.available(now: .nan), 0)
        XCTAssertEqual(b.available(now: 100.5), 5, accuracy: 1e-9)
    }

    func testLongRunRateHoldsWithManualClock() {
        let clock = ManualClock()
        var b = try! TokenBucket(rate: 1_000_000, burst: 64_000, now: clock.now())
        for _ in 0..<1000 { b.take(16_000, clock: clock) }   // 16 MB at 1 MB/s, 64 KB burst
        XCTAssertEqual(clock.now(), (16_000_000 - 64_000) / 1_000_000, accuracy: 1e-6)
        XCTAssertLessThan(clock.sleeps.filter { $0 == 0 }.count, 10)
    }

    func testInvalidParametersAreTypedErrors() {
        func err(_ r: Double, _ b: Double, _ t: Double = 0) -> TokenBucketError? {
            do { _ = try TokenBucket(rate: r, burst: b, now: t); return nil } catch { return error }
        }
        XCTAssertEqual(err(0, 1), .invalidRate(0))
        XCTAssertEqual(err(-1, 1), .invalidRate(-1))
        XCTAssertEqual(err(.infinity, 1), .invalidRate(.infinity))
        XCTAssertEqual(err(1, 0), .invalidBurst(0))
        XCTAssertEqual(err(1, 1, .infinity), .invalidTime(.infinity))
        XCTAssertTrue(err(0, 1)!.description.contains("rate 0.0/s"))
        XCTAssertNil(err(1, 1))
    }
}
