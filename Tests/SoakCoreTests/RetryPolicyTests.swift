import XCTest
import SoakCore

private struct Failure: Error, Equatable {
    var attempt: Int
    var retryable = true
    var retryAfter: Double? = nil
}

final class RetryPolicyTests: XCTestCase {
    // MARK: Backoff windows and jitter

    func testWindowDoublesUpToMax() {
        let p = RetryPolicy(maxAttempts: 10, baseDelay: 0.5, maxDelay: 20)
        XCTAssertEqual((1...8).map { p.window(afterAttempt: $0) }, [0.5, 1, 2, 4, 8, 16, 20, 20])
    }

    func testEachDelayIsWithinItsFullJitterWindow() {
        let p = RetryPolicy(maxAttempts: 8, baseDelay: 0.1, maxDelay: 3)
        var rng = SeededRandom(seed: 1)
        for n in 1..<8 {
            let cap = min(3, 0.1 * pow(2, Double(n - 1)))
            var seen: [Double] = []
            for _ in 0..<2000 {
                let d = p.delay(afterAttempt: n, retryAfter: nil, random: &rng)!
                XCTAssertGreaterThanOrEqual(d, 0)
                XCTAssertLessThanOrEqual(d, cap)
                seen.append(d)
            }
            // Full jitter: spread over the whole window, not clustered at the top.
            XCTAssertLessThan(seen.min()!, cap * 0.05)
            XCTAssertGreaterThan(seen.max()!, cap * 0.95)
            let mean = seen.reduce(0, +) / Double(seen.count)
            XCTAssertEqual(mean, cap / 2, accuracy: cap * 0.05)
        }
    }

    func testGivesUpAfterMaxAttempts() {
        let p = RetryPolicy(maxAttempts: 3, baseDelay: 1, maxDelay: 10)
        var rng = SeededRandom(seed: 2)
        XCTAssertNotNil(p.delay(afterAttempt: 1, retryAfter: nil, random: &rng))
        XCTAssertNotNil(p.delay(afterAttempt: 2, retryAfter: nil, random: &rng))
        XCTAssertNil(p.delay(afterAttempt: 3, retryAfter: nil, random: &rng))
        XCTAssertNil(p.delay(afterAttempt: 4, retryAfter: 1, random: &rng))
        XCTAssertNil(RetryPolicy(maxAttempts: 1, baseDelay: 1, maxDelay: 1).delay(afterAttempt: 1, retryAfter: nil, random: &rng))
    }

    func testRetryAfterIsAMinimumAndIsCapped() {
        let p = RetryPolicy(maxAttempts: 5, baseDelay: 0.1, maxDelay: 1)
        var rng = SeededRandom(seed: 3)
        for _ in 0..<200 {
            XCTAssertGreaterThanOrEqual(p.delay(afterAttempt: 1, retryAfter: 7, random: &rng)!, 7)
        }
        // Retry-After below the jitter draw: the draw stands (still within the window).
        for _ in 0..<200 {
            let d = p.delay(afterAttempt: 4, retryAfter: 0.001, random: &rng)!
            XCTAssertGreaterThanOrEqual(d, 0.001)
            XCTAssertLessThanOrEqual(d, 1)
        }
        XCTAssertEqual(p.delay(afterAttempt: 1, retryAfter: 1e9, random: &rng), RetryPolicy.maxRetryAfter)
        // Nonsense headers are ignored.
        for bogus in [-5.0, 0, .nan, .infinity, -.infinity] {
            XCTAssertLessThanOrEqual(p.delay(afterAttempt: 1, retryAfter: bogus, random: &rng)!, 0.1, "\(bogus)")
        }
    }

    func testHugeAttemptNumbersStayFinite() {
        let p = RetryPolicy(maxAttempts: .max, baseDelay: 0.25, maxDelay: 30)
        var rng = SeededRandom(seed: 4)
        for n in [64, 1000, 1 << 40, Int.max - 1] {
            let d = p.delay(afterAttempt: n, retryAfter: nil, random: &rng)!
            XCTAssertTrue(d.isFinite)
            XCTAssertLessThanOrEqual(d, 30)
        }
        let zero = RetryPolicy(maxAttempts: .max, baseDelay: 0, maxDelay: 0)
        XCTAssertEqual(zero.delay(afterAttempt: 5000, retryAfter: nil, random: &rng), 0)
    }

    func testSameSeedSameDelays() {
        let p = RetryPolicy(maxAttempts: 6, baseDelay: 0.5, maxDelay: 20)
        var a = SeededRandom(seed: 77), b = SeededRandom(seed: 77)
        let da = (1..<6).map { p.delay(afterAttempt: $0, retryAfter: nil, random: &a)! }
        let db = (1..<6).map { p.delay(afterAttempt: $0, retryAfter: nil, random: &b)! }
        XCTAssertEqual(da, db)
    }

    // MARK: Construction

    func testInitClampsNonsense() {
        let p = RetryPolicy(maxAttempts: 0, baseDelay: -1, maxDelay: .nan)
        XCTAssertEqual(p, RetryPolicy(maxAttempts: 1, baseDelay: 0, maxDelay: 0))
        let q = RetryPolicy(maxAttempts: 3, baseDelay: 5, maxDelay: 1)
        XCTAssertEqual(q.maxDelay, 5)
    }

    func testValidatedRejectsNonsenseWithMessages() {
        XCTAssertNoThrow(try RetryPolicy.validated(maxAttempts: 3, baseDelay: 0.5, maxDelay: 20))
        func err(_ a: Int, _ b: Double, _ m: Double) -> RetryPolicyError? {
            do { _ = try RetryPolicy.validated(maxAttempts: a, baseDelay: b, maxDelay: m); return nil } catch { return error }
        }
        XCTAssertEqual(err(0, 1, 2), .attemptsBelowOne(0))
        XCTAssertEqual(err(1, -1, 2), .invalidDelay(name: "baseDelay", value: -1))
        XCTAssertEqual(err(1, 1, .infinity), .invalidDelay(name: "maxDelay", value: .infinity))
        XCTAssertEqual(err(1, 3, 2), .maxBelowBase(base: 3, max: 2))
        XCTAssertEqual(err(0, 1, 2)?.description,
                       "invalid retry policy: maxAttempts is 0, but at least 1 attempt is needed")
        XCTAssertTrue(err(1, 3, 2)!.description.contains("below baseDelay"))
    }

    // MARK: withRetries

    func testSucceedsAfterRetryableFailures() throws {
        let clock = ManualClock()
        var rng = SeededRandom(seed: 10)
        let policy = RetryPolicy(maxAttempts: 5, baseDelay: 1, maxDelay: 8)
        var calls = 0
        var retries: [(Int, Double)] = []
        let result = try withRetries(policy: policy, clock: clock, random: &rng,
                                     isRetryable: { _ in true }, onRetry: { n, _, d in retries.append((n, d)) }) {
            calls += 1
            if calls < 3 { throw Failure(attempt: calls) }
            return "ok"
        }
        XCTAssertEqual(result, "ok")
        XCTAssertEqual(calls, 3)
        XCTAssertEqual(retries.map(\.0), [1, 2])
        XCTAssertEqual(clock.sleeps, retries.map(\.1))
        XCTAssertLessThanOrEqual(clock.sleeps[0], 1)
        XCTAssertLessThanOrEqual(clock.sleeps[1], 2)
        XCTAssertEqual(clock.now(), clock.totalSlept, accuracy: 1e-12)
    }

    func testAttemptCapRethrowsTheLastError() {
        let clock = ManualClock()
        var rng = SeededRandom(seed: 11)
        var calls = 0
        XCTAssertThrowsError(try withRetries(policy: RetryPolicy(maxAttempts: 4, baseDelay: 0.5, maxDelay: 2),
                                             clock: clock, random: &rng, isRetryable: { _ in true }) { () throws -> Int in
            calls += 1
            throw Failure(attempt: calls)
        }) { error in
            XCTAssertEqual(error as? Failure, Failure(attempt: 4))
        }
        XCTAssertEqual(calls, 4)
        XCTAssertEqual(clock.sleeps.count, 3)
        for (i, s) in clock.sleeps.enumerated() { XCTAssertLessThanOrEqual(s, min(2, 0.5 * pow(2, Double(i)))) }
    }

    func testNonRetryableFailsImmediately() {
        let clock = ManualClock()
        var rng = SeededRandom(seed: 12)
        var calls = 0
        var retried = false
        XCTAssertThrowsError(try withRetries(policy: RetryPolicy(maxAttempts: 9, baseDelay: 1, maxDelay: 1),
                                             clock: clock, random: &rng,
                                             isRetryable: { ($0 as? Failure)?.retryable ?? false },
                                             onRetry: { _, _, _ in retried = true }) {
            calls += 1
            throw Failure(attempt: calls, retryable: false)
        })
        XCTAssertEqual(calls, 1)
        XCTAssertFalse(retried)
        XCTAssertEqual(clock.sleeps, [])
    }

    func testForeignErrorsAreNotRetriedByTypedPredicate() {
        struct Other: Error {}
        let clock = ManualClock()
        var rng = SeededRandom(seed: 13)
        var calls = 0
        XCTAssertThrowsError(try withRetries(policy: RetryPolicy(maxAttempts: 3, baseDelay: 1, maxDelay: 1),
                                             clock: clock, random: &rng,
                                             isRetryable: { ($0 as? Failure)?.retryable ?? false }) {
            calls += 1
            throw Other()
        }) { XCTAssertTrue($0 is Other) }
        XCTAssertEqual(calls, 1)
    }

    func testRetryAfterIsHonoredBetweenAttempts() throws {
        let clock = ManualClock(start: 100)
        var rng = SeededRandom(seed: 14)
        var calls = 0
        try withRetries(policy: RetryPolicy(maxAttempts: 5, baseDelay: 0.01, maxDelay: 0.02), clock: clock,
                        random: &rng, isRetryable: { _ in true },
                        retryAfter: { ($0 as? Failure)?.retryAfter }) {
            calls += 1
            if calls == 1 { throw Failure(attempt: 1, retryAfter: 5) }
            if calls == 2 { throw Failure(attempt: 2, retryAfter: 3600) }
        }
        XCTAssertEqual(calls, 3)
        XCTAssertEqual(clock.sleeps.count, 2)
        XCTAssertEqual(clock.sleeps[0], 5, accuracy: 0.02)
        XCTAssertEqual(clock.sleeps[1], RetryPolicy.maxRetryAfter)
        XCTAssertEqual(clock.now(), 100 + clock.totalSlept, accuracy: 1e-9)
    }

    func testNoRetryWithSingleAttemptPolicy() {
        let clock = ManualClock()
        var rng = SystemRandomNumberGenerator()
        var calls = 0
        XCTAssertThrowsError(try withRetries(policy: RetryPolicy(maxAttempts: 1, baseDelay: 1, maxDelay: 1),
                                             clock: clock, random: &rng, isRetryable: { _ in true }) {
            calls += 1
            throw Failure(attempt: calls)
        })
        XCTAssertEqual(calls, 1)
        XCTAssertEqual(clock.sleeps, [])
    }

    /// The shape the downloader uses: untyped throwing body returning Void, closures capturing state.
    func testCallShapeUsedByCallers() throws {
        var randomSource = SystemRandomNumberGenerator()
        var listed: [Int] = []
        var log: [String] = []
        var first = true
        try withRetries(policy: RetryPolicy(maxAttempts: 5, baseDelay: 0, maxDelay: 0), clock: ManualClock(),
                        random: &randomSource,
                        isRetryable: { ($0 as? Failure)?.retryable ?? false },
                        retryAfter: { ($0 as? Failure)?.retryAfter },
                        onRetry: { n, e, d in log.append("attempt \(n) \(e) \(d)") }) {
            listed.removeAll()
            listed.append(1)
            if first { first = false; throw Failure(attempt: 1) }
            listed.append(2)
        }
        XCTAssertEqual(listed, [1, 2])
        XCTAssertEqual(log.count, 1)
    }

    // MARK: Clocks and randomness

    func testManualClock() {
        let c = ManualClock(start: 10)
        XCTAssertEqual(c.now(), 10)
        c.sleep(seconds: 1.5)
        c.advance(by: 2)
        c.sleep(seconds: -1)
        c.sleep(seconds: .nan)
        c.advance(by: -3)
        XCTAssertEqual(c.now(), 13.5)
        XCTAssertEqual(c.sleeps.count, 3)
        XCTAssertEqual(c.sleeps[0], 1.5)
        XCTAssertEqual(c.totalSlept, 1.5)
    }

    func testManualClockIsThreadSafe() {
        let c = ManualClock()
        DispatchQueue.concurrentPerform(iterations: 1000) { _ in c.sleep(seconds: 0.5) }
        XCTAssertEqual(c.now(), 500)
        XCTAssertEqual(c.sleeps.count, 1000)
    }

    func testSystemClockIsMonotonicAndSleeps() {
        let c = SystemClock()
        let t0 = c.now()
        c.sleep(seconds: 0.02)
        let t1 = c.now()
        XCTAssertGreaterThanOrEqual(t1 - t0, 0.019)
        XCTAssertLessThan(t1 - t0, 5)
        c.sleep(seconds: 0)
        c.sleep(seconds: -1)
        c.sleep(seconds: .nan)
        XCTAssertGreaterThanOrEqual(c.now(), t1)
    }

    func testSeededRandomMatchesSplitMix64Reference() {
        // Reference outputs from the published SplitMix64 algorithm (independent Python implementation).
        var r0 = SeededRandom(seed: 0)
        XCTAssertEqual([r0.next(), r0.next(), r0.next()],
                       [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var r42 = SeededRandom(seed: 42)
        XCTAssertEqual([r42.next(), r42.next()], [0xBDD7_3226_2FEB_6E95, 0x28EF_E333_B266_F103])
    }

    func testSeededRandomIsReproducibleAndRoughlyUniform() {
        var a = SeededRandom(seed: 123), b = SeededRandom(seed: 123), c = SeededRandom(seed: 124)
        let sa = (0..<100).map { _ in a.next() }
        XCTAssertEqual(sa, (0..<100).map { _ in b.next() })
        XCTAssertNotEqual(sa, (0..<100).map { _ in c.next() })
        var buckets = [Int](repeating: 0, count: 10)
        var r = SeededRandom(seed: 9)
        for _ in 0..<100_000 { buckets[Int.random(in: 0..<10, using: &r)] += 1 }
        for n in buckets { XCTAssertEqual(Double(n), 10_000, accuracy: 500) }
    }
}
