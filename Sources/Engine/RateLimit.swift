/// Enforcing the total speed cap (MAX_SPEED) across worker processes.
///
/// How it works. Workers are separate processes, so there is no shared counter to throttle on.
/// `RateSplit.perWorkerBytesPerSecond` gives each worker an even share of the cap (re-sent when
/// the pool is resized), and each worker paces all its transfers with a `TokenBucket`, pausing a
/// transfer while the bucket is in debt. `perTransferBytesPerSecond` is the older split for
/// libcurl's per-transfer limit, which leaked far past the cap on loopback and is no longer used
/// by the engine. The share has a floor, because a trickle trips the stall detector (low-speed
/// limit). `TokenBucket`: tokens refill at `rate` per second up to `burst`; a caller takes
/// tokens or learns how long to wait. Time is passed in (monotonic seconds) so it is
/// deterministic in tests.
import SoakCore

/// Splits a total speed cap evenly over the workers (each paces its own transfers with a
/// `TokenBucket`), or over every transfer slot.
public enum RateSplit {
    /// Smallest per-transfer cap handed to libcurl: below this, transfers trip the low-speed
    /// stall limit and libcurl's pacing gets bursty.
    public static let minimumPerTransferBytesPerSecond: Int64 = 32 * 1024

    /// The per-transfer receive cap for libcurl, or nil for "no cap" (no total cap, or one that
    /// is not a finite positive number). Never 0, which libcurl would read as unlimited.
    /// Each worker's share of the cap in bytes/s, or nil for no cap.
    public static func perWorkerBytesPerSecond(maxBytesPerSecond: Double?, workers: Int) -> Int64? {
        guard let total = maxBytesPerSecond, total.isFinite, total > 0 else { return nil }
        return max(minimumPerTransferBytesPerSecond, Int64((total / Double(max(1, workers))).rounded(.down)))
    }

    public static func perTransferBytesPerSecond(maxBytesPerSecond: Double?, workers: Int,
                                                 transfersPerWorker: Int) -> Int64? {
        guard let total = maxBytesPerSecond, total.isFinite, total > 0 else { return nil }
        let slots = Double(max(1, workers)) * Double(max(1, transfersPerWorker))
        let share = (total / slots).rounded(.down)
        guard share < Double(Int64.max) else { return Int64.max }
        return max(minimumPerTransferBytesPerSecond, Int64(share))
    }
}

/// A token bucket: `rate` tokens per second accumulate up to `burst`.
public struct TokenBucket: Sendable {
    /// Tokens added per second.
    public let rate: Double
    /// Most tokens the bucket holds (the largest instantaneous burst).
    public let burst: Double
    /// Tokens as of `updatedAt` (negative when a reservation is still being paid off).
    public private(set) var tokens: Double
    /// Monotonic time of the last refill.
    public private(set) var updatedAt: Double

    /// Starts full at time `now`.
    public init(rate: Double, burst: Double, now: Double) throws(TokenBucketError) {
        guard rate.isFinite, rate > 0 else { throw .invalidRate(rate) }
        guard burst.isFinite, burst > 0 else { throw .invalidBurst(burst) }
        guard now.isFinite else { throw .invalidTime(now) }
        self.rate = rate; self.burst = burst; self.tokens = burst; self.updatedAt = now
    }

    /// Adds what accrued since the last call. Time going backwards adds nothing.
    private mutating func refill(_ now: Double) {
        guard now.isFinite, now > updatedAt else { return }
        tokens = min(burst, tokens + (now - updatedAt) * rate)
        updatedAt = now
    }

    /// Tokens available at `now`.
    public mutating func available(now: Double) -> Double {
        refill(now)
        return tokens
    }

    /// Takes `n` tokens if they are all there; otherwise takes nothing and returns false.
    public mutating func tryTake(_ n: Double, now: Double) -> Bool {
        refill(now)
        guard n <= tokens else { return false }
        tokens -= max(0, n)
        return true
    }

    /// Takes `n` tokens now, going into debt if needed, and returns the seconds the caller must
    /// wait before acting (0 if they were available). Works for `n` > `burst`; later callers
    /// queue behind the debt, so the long-run rate holds.
    public mutating func reserve(_ n: Double, now: Double) -> Double {
        refill(now)
        tokens -= max(0, n)
        return tokens >= 0 ? 0 : -tokens / rate
    }

    /// Seconds from `now` until `n` tokens will be available (0 if they are), without taking any.
    /// Infinite when `n` exceeds `burst`: use `reserve` for that.
    public func timeUntilAvailable(_ n: Double, now: Double) -> Double {
        guard n <= burst else { return .infinity }
        let elapsed = now.isFinite && now > updatedAt ? now - updatedAt : 0
        let have = min(burst, tokens + elapsed * rate)
        return have >= n ? 0 : (n - have) / rate
    }

    /// Reserves `n` tokens and sleeps on `clock` until they are paid for.
    public mutating func take(_ n: Double, clock: some SoakClock) {
        let wait = reserve(n, now: clock.now())
        if wait > 0 { clock.sleep(seconds: wait) }
    }
}

/// A token bucket that cannot work.
public enum TokenBucketError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidRate(Double)
    case invalidBurst(Double)
    case invalidTime(Double)

    public var description: String {
        switch self {
        case .invalidRate(let r):
            return "invalid token bucket: rate \(r)/s, but it must be finite and above 0 or nothing is ever allowed"
        case .invalidBurst(let b):
            return "invalid token bucket: burst \(b), but it must be finite and above 0 to hold any token"
        case .invalidTime(let t):
            return "invalid token bucket: start time \(t) is not a finite number of seconds"
        }
    }
}
