/// When to fetch temporary credentials again, and what to do when that fails. Pure: the caller
/// passes the time in (tests drive it with a fake clock) and does the fetching.
///
/// - A refresh is due at `expiration - min(advisoryMargin, lifetime / 4)`, where the lifetime
///   runs from when the credentials were obtained to when they expire: hour-long keys are
///   refreshed 15 minutes early (botocore's advisory margin), short test keys after three
///   quarters of their life, so there is always time to retry before they stop working.
/// - A failed refresh keeps the old keys (they still work until they expire), reports whether
///   it is the first failure of a streak (the one to log as a warning) and schedules a retry
///   with doubling backoff, never later than the expiry while the old keys still work.
/// - Credentials without an expiration are never refreshed.
import Foundation

public struct CredentialRefresher: Sendable {
    /// botocore's advisory refresh margin (its mandatory one is 10 minutes).
    public static let advisoryMargin: TimeInterval = 15 * 60
    /// First retry after a failure: STS, IMDS and container agents recover from blips in seconds.
    public static let firstRetryDelay: TimeInterval = 1
    /// Longest wait between retries, so an outage that ends is noticed within minutes.
    public static let maxRetryDelay: TimeInterval = 5 * 60

    public private(set) var credentials: Credentials
    public private(set) var obtainedAt: Date
    /// Failed attempts since the last success.
    public private(set) var failures = 0
    private var retryAt: Date?

    public init(credentials: Credentials, obtainedAt: Date) {
        self.credentials = credentials
        self.obtainedAt = obtainedAt
    }

    /// When the current credentials should be replaced; nil when they never expire.
    public var refreshTime: Date? {
        guard let exp = credentials.expiration else { return nil }
        let lifetime = max(0, exp.timeIntervalSince(obtainedAt))
        return exp.addingTimeInterval(-min(Self.advisoryMargin, lifetime / 4))
    }

    /// When the next attempt is due (the retry time after a failure); nil for never.
    public var nextAttempt: Date? { failures > 0 ? retryAt : refreshTime }

    public func isDue(now: Date) -> Bool {
        guard let t = nextAttempt else { return false }
        return now >= t
    }

    /// The credentials while they still work; nil once they have expired.
    public func usable(now: Date) -> Credentials? {
        if let exp = credentials.expiration, now >= exp { return nil }
        return credentials
    }

    /// New credentials arrived.
    public mutating func succeeded(_ new: Credentials, now: Date) {
        credentials = new
        obtainedAt = now
        failures = 0
        retryAt = nil
    }

    /// What a failed attempt means for the caller.
    public struct Failure: Sendable, Equatable {
        /// The first failure since the last success: log one warning for it.
        public var firstOfStreak: Bool
        /// When to try again.
        public var retryAt: Date
        /// The old credentials no longer work.
        public var expired: Bool
    }

    /// A refresh attempt failed: keep the old credentials and schedule a retry.
    @discardableResult
    public mutating func failed(now: Date) -> Failure {
        failures += 1
        let delay = min(Self.maxRetryDelay, Self.firstRetryDelay * pow(2, Double(min(failures - 1, 30))))
        var next = now.addingTimeInterval(delay)
        let expired = usable(now: now) == nil
        if !expired, let exp = credentials.expiration, next > exp {
            // One last try just before the old keys stop working.
            next = max(now.addingTimeInterval(Self.firstRetryDelay), exp.addingTimeInterval(-Self.firstRetryDelay))
        }
        retryAt = next
        return Failure(firstOfStreak: failures == 1, retryAt: next, expired: expired)
    }

    /// What `refreshIfDue` did.
    public enum Outcome: Sendable {
        case notDue
        case refreshed
        case failed(Failure, message: String)
    }

    /// Calls `load` when a refresh is due and records the result. `load` returning nil (the
    /// source vanished) counts as a failure.
    public mutating func refreshIfDue(now: Date, load: () throws -> Credentials?) -> Outcome {
        guard isDue(now: now) else { return .notDue }
        do {
            if let c = try load() {
                succeeded(c, now: now)
                return .refreshed
            }
            return .failed(failed(now: now), message: "the credential source no longer has credentials")
        } catch {
            return .failed(failed(now: now), message: "\(error)")
        }
    }
}
