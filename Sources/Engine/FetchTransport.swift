/// What the fetch scheduler (`FetchEngine`) needs from whatever carries out its orders.
///
/// How it works. The scheduler owns the orders: lanes, retries with backoff, 412 version checks,
/// resumption, completions and counters. A transport owns the executors that run them (worker
/// processes, threads, later a peer node) and nothing else. The scheduler's one thread drives
/// it in rounds:
///
/// 1. `poll(timeout:backlog:)` sends what was started since the last round, waits up to
///    `timeout` seconds for something to happen (or for `wake`), and returns the events since
///    the last call: `progress`, `landed`, `done`, and `lost` when an executor died with orders.
/// 2. The scheduler applies them (a `done` with a retryable error is requeued, resuming after
///    the bytes it reports; `lost` orders are requeued from the bytes last reported).
/// 3. While `freeSlots(for:)` says there is room, it hands over ready orders with `start`.
///
/// Every order is a ranged GET with If-Match (`FetchOrder.etag`) into the region of a file at
/// `fileOffset`, optionally published under a name when complete (`PublishSpec`). What lands in
/// the file, its block CRCs, the publish step and how errors map are the same for every
/// transport: they share `FetchRegion`, `BlockDigest` and `FetchTargets`. Nothing here is
/// specific to S3 beyond what a `FetchOrder` carries (bucket, key, ETag): a transport whose
/// source is another node reads the same orders. Ranges need not be block-sized or
/// block-aligned at their end; `blockSize` only asks for CRCs of the whole blocks from `start`.
///
/// Threads: every method may be called from any thread; `poll` by one thread at a time (the
/// scheduler's). A transport never calls back into the scheduler: all it says is in events.
import Foundation
import S3
#if canImport(Glibc)
import Glibc
#endif

public protocol FetchTransport: AnyObject, Sendable {
    /// Starts the executors; nothing runs before.
    func start() throws
    /// Orders of `lane` it would take now. Read lanes may get room beyond the bulk capacity, so
    /// a saturated transport still starts a mount read at once.
    func freeSlots(for lane: Lane) -> Int
    /// Takes `order` (ids are the scheduler's, unique while the order is out). It reports on it
    /// exactly once with `done` or `lost`, unless the transport stops first. False: it could not take it
    /// (no room, or its executor failed); the scheduler keeps the order.
    func start(_ order: FetchOrder) -> Bool
    /// An order it holds moved to a higher lane (a read now waits for it).
    func promote(_ id: Int, to lane: Lane)
    /// Waits at most `timeout` seconds for events (less if `wake` is called) and returns those
    /// since the last call. `backlog`: orders are ready that found no free slot (a transport
    /// that can grow may grow).
    func poll(timeout: Double, backlog: Bool) -> [TransportEvent]
    /// Ends a `poll` under way, or the next one, at once.
    func wake()
    /// Requests started from now on are signed with these (a credentials refresh).
    func updateCredentials(_ credentials: Credentials)
    /// Its executors and what they hold, for `EngineStats`.
    func status() -> TransportStatus
    /// Process ids of its executors that are processes (for tests and `soak status`).
    func executorPIDs() -> [pid_t]
    /// Stops every executor; orders under way are abandoned, never reported. Idempotent.
    func stop()
}

/// What a transport reports about the orders it holds.
public enum TransportEvent: Sendable, Equatable {
    /// Bytes of order `id` written contiguously from its `start` so far (this attempt).
    case progress(id: Int, bytes: Int64)
    /// Block orders: blocks `first…` (counted from the order's `start`) are in the file, with
    /// their CRC32Cs, before the order is done.
    case landed(id: Int, first: Int, crcs: [UInt32])
    /// The order ended: every byte written, or an error and the bytes that did land.
    case done(FetchReport)
    /// The executor holding these orders died (crashed, hung, stopped reading); nothing more
    /// comes about them. The scheduler resumes each from the bytes last reported in `progress`.
    case lost(ids: [Int], reason: String)
}

/// A transport's executors, as `EngineStats` shows them.
public struct TransportStatus: Sendable, Equatable {
    public var executors = 0
    /// Executors it is aiming for (an optimizer's target, or fixed).
    public var targetExecutors = 0
    /// Orders it holds.
    public var inflight = 0
    /// Executors replaced after dying, hanging or retiring.
    public var restarts = 0
    /// Bytes per second over its last sampling window.
    public var rate: Double = 0
    public init() {}
}
