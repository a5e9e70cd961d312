/// Asks S3 again after a ranged GET with `If-Match` answered 412.
///
/// A 412 is a question, not a verdict: proxies and gateways send stray ones for objects that
/// never changed. The coordinator HEADs the key (retrying retryable failures like any request)
/// and the answer decides: the same ETag retries the fetch (the retry counts against the
/// order's attempts), a new ETag makes the caller fetch the new version from scratch, a 404
/// fails the key. HEADs run one at a time on the checker's own queue, never on the engine's
/// event thread, through the coordinator's `ObjectStore` (the one the listing uses).
///
/// A version found superseded stays superseded: later 412s for the same (key, old ETag), from
/// the other parts of a large object, are answered from memory without another HEAD.
import Foundation
import Logging
import S3
import SoakCore
import Synchronization

/// What S3 says about an object whose GET with `If-Match` answered 412.
public enum VersionAnswer: Sendable, Equatable {
    /// Still the ETag the fetch asked for: the 412 was spurious.
    case unchanged
    /// A new version (ETag and/or size) replaced the one listed.
    case changed(ObjectInfo)
    /// HEAD answered 404: deleted since it was listed.
    case gone
    /// HEAD itself failed (after its retries).
    case unknown(S3Error)

    /// Version changes one object may go through within one run before soak gives up on it:
    /// an object rewritten faster than it can be fetched would otherwise be fetched forever.
    public static let maxVersionChanges = 3

    /// The one-line reason a key failed after a 412 and this answer (not for `.changed`, which
    /// is fetched again unless `maxVersionChanges` is reached: see `tooManyChanges`).
    public func failureReason(listedETag etag: String) -> String {
        switch self {
        case .unchanged:
            return "GET answered 412 (If-Match) on every attempt, though HEAD shows the ETag \(etag) unchanged"
        case .changed(let now):
            return "the object changed during the download (ETag \(etag) → \(now.etag))"
        case .gone:
            return Self.deleted("a GET answered 412, then HEAD 404")
        case .unknown(let e):
            return "GET answered 412 (If-Match) and the HEAD asking for its current version failed: \(e)"
        }
    }

    /// The one-line reason for a listed key that is gone; `how` says what showed it.
    public static func deleted(_ how: String) -> String { "deleted since it was listed (\(how))" }

    public static func tooManyChanges(_ n: Int) -> String {
        "changed \(n) times while being fetched; giving up on it (rerun to fetch its latest version)"
    }
}

public final class VersionChecker: Sendable {
    private let store: ObjectStore
    private let retry: RetryPolicy
    private let logger: Logger
    /// One HEAD at a time: the answers are rare, and the store serves one request at a time.
    private let queue = DispatchQueue(label: "soak.version-check")
    private struct State {
        /// Answers for versions known to be gone or replaced, by bucket, key and old ETag.
        var superseded: [String: VersionAnswer] = [:]
        var headCount = 0
    }
    private let state = Mutex(State())

    public init(store: ObjectStore, retry: RetryPolicy, logger: Logger) {
        self.store = store; self.retry = retry; self.logger = logger
    }

    /// HEADs sent so far (for tests).
    public var heads: Int { state.withLock { $0.headCount } }

    /// Answers on the checker's queue, in order of asking. Safe to call with other locks held.
    public func ask(bucket: String, key: String, etag: String, answer: @escaping @Sendable (VersionAnswer) -> Void) {
        queue.async { [self] in answer(check(bucket: bucket, key: key, etag: etag)) }
    }

    /// HEADs the key (unless its version is known superseded) and compares its ETag with `etag`.
    public func check(bucket: String, key: String, etag: String) -> VersionAnswer {
        let memo = bucket + "\0" + key + "\0" + etag
        let known: VersionAnswer? = state.withLock { s in
            if let known = s.superseded[memo] { return known }
            s.headCount += 1
            return nil
        }
        if let known { return known }
        var random = SystemRandomNumberGenerator()
        let answer: VersionAnswer
        do {
            let info = try withRetries(
                policy: retry, clock: SystemClock(), random: &random,
                isRetryable: { ($0 as? S3Error)?.isRetryable ?? false },
                retryAfter: { ($0 as? S3Error)?.retryAfter },
                onRetry: { [logger] n, e, d in
                    logger.debug("HEAD \(PathError.printable(key)) failed (attempt \(n)), retrying in \(String(format: "%.2f", d)) s: \(e)")
                }) { try store.head(bucket: bucket, key: key) }
            if info.etag.isEmpty {
                answer = .unknown(S3Error(kind: .invalidResponse, operation: "HeadObject", bucket: bucket, key: key,
                                          status: 200, message: "HEAD answered without an ETag"))
            } else if info.etag == etag {
                answer = .unchanged
            } else {
                answer = .changed(info)
            }
        } catch let e as S3Error where e.kind == .http && e.status == 404 {
            answer = .gone
        } catch let e as S3Error {
            answer = .unknown(e)
        } catch {
            answer = .unknown(S3Error(kind: .invalidResponse, operation: "HeadObject", bucket: bucket, key: key,
                                      message: "\(error)"))
        }
        switch answer {
        case .unchanged:
            logger.debug("\(PathError.printable(key)): 412 on If-Match, but HEAD shows ETag \(etag) unchanged; retrying")
        case .changed(let now):
            logger.info("\(PathError.printable(key)) changed since it was listed (ETag \(etag) → \(now.etag))")
        case .gone, .unknown:
            break
        }
        if case .unknown = answer {} else if answer != .unchanged {
            state.withLock { $0.superseded[memo] = answer }
        }
        return answer
    }
}

/// What a download or prewarm does about an object after HEAD's answer to a 412.
public enum VersionStep: Sendable, Equatable {
    /// Fetch this version from scratch, in place of the old one.
    case refetch(ObjectInfo)
    /// Fail the key with this line; the old version's data is discarded.
    case fail(String)
}

extension VersionAnswer {
    /// The step after this answer for an object whose version changed `n` times so far in this
    /// run; nil when the listed version stands (same ETag, or HEAD failed): the fetch then fails
    /// like any other, keeping what it has.
    public func step(changesSoFar n: Int, listedETag etag: String) -> VersionStep? {
        switch self {
        case .changed(let now):
            return n + 1 > Self.maxVersionChanges ? .fail(Self.tooManyChanges(n + 1)) : .refetch(now)
        case .gone:
            return .fail(failureReason(listedETag: etag))
        case .unchanged, .unknown:
            return nil
        }
    }
}
