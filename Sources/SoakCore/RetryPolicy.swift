/// Retry timing: capped exponential backoff with full jitter, and a loop that applies it.
///
/// How it works: after failed attempt `n` (1-based) the wait is uniform in
/// `[0, min(maxDelay, baseDelay · 2^(n-1))]` ("full jitter": clients that failed together spread
/// out instead of retrying in lockstep). If the server sent Retry-After, the wait is at least
/// that, capped at `maxRetryAfter` so a bogus header cannot park a worker for hours. After
/// `maxAttempts` attempts in total `delay` returns nil: give up. `withRetries` runs an operation,
/// asks `isRetryable` about each failure, reports the retry, sleeps on the injected clock and
/// tries again; the last error is rethrown unchanged. Time and randomness are injected so tests
/// run instantly and deterministically (`ManualClock`, `SeededRandom`).
public struct RetryPolicy: Sendable, Equatable {
    /// A server asking for more than this (Retry-After) is treated as asking for this much:
    /// five minutes is longer than any sane S3 back-off and bounds a bad header's damage.
    public static let maxRetryAfter: Double = 300
    /// Exponents above this add nothing (2^60 · any base exceeds every maxDelay) and keep
    /// the arithmetic finite.
    static let maxExponent = 60

    /// Attempts in total, including the first (1 = never retry).
    public var maxAttempts: Int
    /// Cap of the jitter window after the first failure, seconds.
    public var baseDelay: Double
    /// Largest jitter window, seconds.
    public var maxDelay: Double

    /// Out-of-range values are clamped (attempts ≥ 1, delays ≥ 0 and finite, maxDelay ≥ baseDelay);
    /// use `validated` for user input that should be rejected instead.
    public init(maxAttempts: Int, baseDelay: Double, maxDelay: Double) {
        self.maxAttempts = max(1, maxAttempts)
        let base = baseDelay.isFinite ? max(0, baseDelay) : 0
        self.baseDelay = base
        self.maxDelay = maxDelay.isFinite ? max(base, maxDelay) : base
    }

    /// Like `init`, but refuses out-of-range values.
    public static func validated(maxAttempts: Int, baseDelay: Double,
                                 maxDelay: Double) throws(RetryPolicyError) -> RetryPolicy {
        guard maxAttempts >= 1 else { throw .attemptsBelowOne(maxAttempts) }
        guard baseDelay.isFinite, baseDelay >= 0 else { throw .invalidDelay(name: "baseDelay", value: baseDelay) }
        guard maxDelay.isFinite, maxDelay >= 0 else { throw .invalidDelay(name: "maxDelay", value: maxDelay) }
        guard maxDelay >= baseDelay else { throw .maxBelowBase(base: baseDelay, max: maxDelay) }
        return RetryPolicy(maxAttempts: maxAttempts, baseDelay: baseDelay, maxDelay: maxDelay)
    }

    /// The upper end of the jitter window after failed attempt `n` (1-based).
    public func window(afterAttempt n: Int) -> Double {
        let exponent = min(max(n - 1, 0), RetryPolicy.maxExponent)
        return min(maxDelay, baseDelay * Double(sign: .plus, exponent: exponent, significand: 1))
    }

    /// Seconds to wait after failed attempt `n` (1-based), or nil when attempts are exhausted.
    public func delay(afterAttempt n: Int, retryAfter: Double?,
                      random: inout some RandomNumberGenerator) -> Double? {
        guard n < maxAttempts else { return nil }
        let cap = window(afterAttempt: n)
        var wait = cap > 0 ? Double.random(in: 0...cap, using: &random) : 0
        if let ra = retryAfter, ra.isFinite, ra > 0 {
            wait = max(wait, min(ra, RetryPolicy.maxRetryAfter))
        }
        return wait
    }
}

/// A retry policy that cannot work, from user input.
public enum RetryPolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    case attemptsBelowOne(Int)
    case invalidDelay(name: String, value: Double)
    case maxBelowBase(base: Double, max: Double)

    public var description: String {
        switch self {
        case .attemptsBelowOne(let n):
            return "invalid retry policy: maxAttempts is \(n), but at least 1 attempt is needed"
        case .invalidDelay(let name, let v):
            return "invalid retry policy: \(name) is \(v), but it must be a finite number of seconds ≥ 0"
        case .maxBelowBase(let b, let m):
            return "invalid retry policy: maxDelay \(m) s is below baseDelay \(b) s, so backoff could never grow"
        }
    }
}

/// Runs `op` until it succeeds, fails with an error `isRetryable` rejects, or `policy` runs out of
/// attempts; then rethrows the last error. Before each retry calls
/// `onRetry(failedAttempt, error, delaySeconds)` and sleeps `delaySeconds` on `clock`.
public func withRetries<T>(policy: RetryPolicy, clock: some SoakClock,
                           random: inout some RandomNumberGenerator,
                           isRetryable: (Error) -> Bool,
                           retryAfter: (Error) -> Double? = { _ in nil },
                           onRetry: (Int, Error, Double) -> Void = { _, _, _ in },
                           _ op: () throws -> T) throws -> T {
    var attempt = 1
    while true {
        do {
            return try op()
        } catch {
            guard isRetryable(error),
                  let wait = policy.delay(afterAttempt: attempt, retryAfter: retryAfter(error), random: &random)
            else { throw error }
            onRetry(attempt, error, wait)
            clock.sleep(seconds: wait)
            attempt += 1
        }
    }
}
