/// Owns the coordinator's current credentials and refreshes temporary ones before they expire.
///
/// - It keeps the provider that produced the credentials (not just the keys) and calls it again
///   when `CredentialRefresher` says a refresh is due: at expiry minus min(15 min, a quarter of
///   the lifetime).
/// - New keys go to the coordinator's own stores (they read `current` for every request) and to
///   every subscriber (a `FetchEngine` passes them to its workers over their pipes).
/// - A failed refresh keeps the old keys, logs one warning per failure streak (no secret: the
///   provider's errors name the source only) and retries with the refresher's backoff.
/// - Credentials without an expiration start no timer.
/// - S3 can refuse keys the keeper still thinks good (`ExpiredToken` from a skewed clock, a key
///   revoked early): `refreshNow(rejected:)` (the coordinator's stores, synchronously) and
///   `requestRefresh()` (the fetch engine, for a worker's GET) refresh at once, at most once per
///   `minForcedInterval`, so a server that keeps refusing cannot make every request call STS.
///
/// The clock and the wait are injected: unit tests call `tick()` with a fake clock; `start()`
/// runs the same `tick` on a timer thread.
import Foundation
import Logging

public final class CredentialKeeper: @unchecked Sendable {  // @unchecked: the timer waits on `lock` (Mutex has no wait)
    private let provider: (any CredentialProvider)?
    private let now: @Sendable () -> Date
    private let logger: Logger
    private let lock = NSCondition()
    private var refresher: CredentialRefresher
    private var subscribers: [Int: @Sendable (Credentials) -> Void] = [:]
    private var nextSubscriber = 0
    private var thread: Thread?
    private var stopping = false
    private var refreshCount = 0
    /// Serializes calls to the provider (the timer's and the forced ones); taken before `lock`.
    private let loading = NSLock()
    /// When new credentials were last installed (forced refreshes are spaced from it).
    private var installedAt: Date
    /// Set by `requestRefresh`: the timer thread refreshes at its next wake-up.
    private var forced = false
    /// A forced refresh comes at most this often: new keys a server refuses too are not better
    /// for being fetched on every request.
    public static let minForcedInterval: TimeInterval = 10
    /// Refreshes done since the start (for logs and tests).
    public var refreshes: Int {
        lock.lock(); defer { lock.unlock() }
        return refreshCount
    }

    /// The timer never sleeps longer than this between checks, so a wall-clock jump (a
    /// suspended VM) is noticed within a minute.
    public static let maxSleep: TimeInterval = 60

    /// `provider` is what `credentials` came from; nil (or credentials without an expiration)
    /// means they are never refreshed.
    public init(credentials: Credentials, provider: (any CredentialProvider)?, logger: Logger,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.provider = provider
        self.now = now
        self.logger = logger
        let t = now()
        self.refresher = CredentialRefresher(credentials: credentials, obtainedAt: t)
        self.installedAt = t
    }

    /// Fixed credentials (tests, anonymous requests): never refreshed.
    public convenience init(fixed credentials: Credentials) {
        self.init(credentials: credentials, provider: nil, logger: Logger(label: "soak"))
    }

    /// Walks the default chain (as `Credentials.resolveWithSource`) and keeps the provider that
    /// answered, to call again on refresh. Returns the keeper and the source's name.
    public static func resolve(environment: [String: String], home: String, profile: String? = nil,
                               region: String? = nil, logger: Logger) throws -> (keeper: CredentialKeeper, source: String) {
        let context = CredentialContext(environment: environment, home: home, region: region)
        let found = try DefaultCredentialChain.make(context: context, explicitProfile: profile).resolve()
        return (CredentialKeeper(credentials: found.credentials, provider: found.provider, logger: logger), found.provider.name)
    }

    /// The credentials to sign with now (the old ones while a refresh keeps failing).
    public var current: Credentials {
        lock.lock(); defer { lock.unlock() }
        return refresher.credentials
    }

    /// When the next refresh attempt is due; nil for never.
    public var nextAttempt: Date? {
        lock.lock(); defer { lock.unlock() }
        return provider == nil ? nil : refresher.nextAttempt
    }

    /// Calls `handler` with every new set of credentials, and once now with the current ones (so
    /// an engine made after a refresh starts with fresh keys). Returns a token for `unsubscribe`.
    @discardableResult
    public func subscribe(_ handler: @escaping @Sendable (Credentials) -> Void) -> Int {
        lock.lock()
        let id = nextSubscriber
        nextSubscriber += 1
        subscribers[id] = handler
        let c = refresher.credentials
        lock.unlock()
        handler(c)
        return id
    }

    public func unsubscribe(_ id: Int) {
        lock.lock(); defer { lock.unlock() }
        subscribers[id] = nil
    }

    /// True when the credentials came from a source that can give new ones (they expire).
    public var isRefreshable: Bool {
        lock.lock(); defer { lock.unlock() }
        return provider != nil && refresher.credentials.expiration != nil
    }

    /// Refreshes if due (the provider is called outside the lock). Returns true when new
    /// credentials were installed.
    @discardableResult
    public func tick() -> Bool {
        loading.lock(); defer { loading.unlock() }
        lock.lock()
        let due = refresher.isDue(now: now()) || forced
        forced = false
        lock.unlock()
        return due ? load() : false
    }

    /// S3 refused `accessKeyId` as expired or invalid: refreshes now (unless another caller just
    /// did) and returns the credentials to sign the retry with, or nil when there is nothing new
    /// (fixed keys, a failed refresh, or a forced refresh too soon after the last).
    public func refreshNow(rejected accessKeyId: String) -> Credentials? {
        guard isRefreshable else { return nil }
        loading.lock(); defer { loading.unlock() }
        lock.lock()
        let current = refresher.credentials
        let tooSoon = now().timeIntervalSince(installedAt) < Self.minForcedInterval
        lock.unlock()
        if current.accessKeyId != accessKeyId { return current }  // refreshed meanwhile
        if tooSoon { return nil }
        logger.info("S3 refused the current credentials; refreshing them from \(provider?.name ?? "?") now")
        return load() ? self.current : nil
    }

    /// A worker's request was refused as expired: the timer thread refreshes at once (the
    /// caller holds its own lock, so this only signals). Spaced like `refreshNow`.
    public func requestRefresh() {
        lock.lock(); defer { lock.unlock() }
        guard provider != nil, refresher.credentials.expiration != nil,
              now().timeIntervalSince(installedAt) >= Self.minForcedInterval else { return }
        forced = true
        lock.broadcast()
    }

    /// Calls the provider and installs what it gives (caller holds `loading`).
    private func load() -> Bool {
        guard let provider else { return false }
        var loaded: Credentials?
        var failure: String?
        do {
            loaded = try provider.load()
            if loaded == nil { failure = "the credential source no longer has credentials" }
        } catch {
            failure = "\(error)"
        }
        let after = now()
        lock.lock()
        if let loaded {
            refresher.succeeded(loaded, now: after)
            installedAt = after
            refreshCount += 1
            let handlers = Array(subscribers.values)
            let next = refresher.nextAttempt
            lock.broadcast()
            lock.unlock()
            let when = next.map { "; next refresh at \(CredentialParsing.isoString($0))" } ?? ""
            logger.info("credentials refreshed from \(provider.name) (access key \(loaded.accessKeyId))\(when)")
            for h in handlers { h(loaded) }
            return true
        }
        let f = refresher.failed(now: after)
        lock.unlock()
        let reason = failure ?? "unknown error"
        if f.firstOfStreak {
            let state = f.expired ? "the current ones have expired" : "keeping the current ones until they expire"
            logger.warning("refreshing credentials from \(provider.name) failed: \(reason); \(state), retrying with backoff")
        } else {
            logger.debug("credential refresh retry failed: \(reason)")
        }
        return false
    }

    /// Starts the timer thread; does nothing for credentials that never expire.
    public func start() {
        lock.lock(); defer { lock.unlock() }
        guard thread == nil, provider != nil, refresher.credentials.expiration != nil else { return }
        let t = Thread { [self] in loop() }
        t.name = "soak-credentials"
        thread = t
        t.start()
    }

    /// Stops the timer thread (a refresh in progress finishes first).
    public func stop() {
        lock.lock()
        stopping = true
        lock.broadcast()
        lock.unlock()
    }

    private func loop() {
        while true {
            lock.lock()
            if stopping { lock.unlock(); return }
            let wait = forced ? 0 : refresher.nextAttempt.map { $0.timeIntervalSince(now()) } ?? Self.maxSleep
            if wait > 0 {
                _ = lock.wait(until: Date().addingTimeInterval(min(wait, Self.maxSleep)))
                let stop = stopping
                lock.unlock()
                if stop { return }
                continue
            }
            lock.unlock()
            tick()
        }
    }
}
