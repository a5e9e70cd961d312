/// The engine: a scheduler of byte-range fetches over a `FetchTransport`.
///
/// How it works. Callers `submit` byte-range fetches into lanes of a `WorkQueue`. One event
/// thread owns the rest: it `poll`s the transport for events, turns them into completions, and
/// hands ready work to the transport while it has free slots (highest lane first). Which
/// executors run the orders, and how many, is the transport's business: worker processes in
/// production (`WorkerPoolTransport`), threads over an `ObjectStore` in tests.
///
/// Failures: a retryable error goes back to the queue after a full-jitter backoff (honouring
/// Retry-After), resuming after the bytes already written; orders the transport lost (their
/// executor died or hung) are requeued from their last reported offset, and an order that keeps
/// killing its executors fails. Nothing is reported complete unless its executor said every
/// byte landed.
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

/// Who hears about finished fetches (`FetchEngine.start(reportingTo:)`), on the engine's thread.
public protocol FetchListener: AnyObject, Sendable {
    func completed(_ c: FetchCompletion)
    /// Blocks of a block order are written, before it is done (blocks counted from its start).
    func blocksLanded(tag: Int, first: Int, crcs: [UInt32])
}

extension FetchListener {
    public func blocksLanded(tag: Int, first: Int, crcs: [UInt32]) {}
}

public final class FetchEngine: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `lock`; the event thread and callers share it.
    struct Job: Sendable {
        var original: FetchOrder
        var current: FetchOrder
        var lane: Lane
        var tag: Int
        var attempts = 0
        /// CRCs of the blocks landed by earlier attempts.
        var crcs: [UInt32] = []
        /// Held by the transport (for promotion).
        var dispatched = false
        /// Bytes the transport reported written from `current.start` in this attempt.
        var reported: Int64 = 0
    }

    let settings: EngineSettings
    let transport: FetchTransport
    let logger: Logger
    var onComplete: (@Sendable (FetchCompletion) -> Void)?
    /// Asked after a 412 on If-Match (set before `start`): the same ETag retries the order, any
    /// other answer completes it with the 412 and the answer. Without it a 412 fails at once
    /// (the mount, which answers ESTALE and revalidates on the next open).
    public var versionCheck: VersionChecker?

    let lock = NSLock()
    var queue = WorkQueue<Int>()
    var jobs: [Int: Job] = [:]
    var nextID = 1
    var stats = EngineStats()
    var random = SystemRandomNumberGenerator()
    var thread: Thread?
    var stopping = false
    var stopped = false
    let stoppedCond = NSCondition()
    /// Unsubscribes from credential keepers (`follow`).
    var unfollow: [@Sendable () -> Void] = []
    /// Asks the followed keeper for new keys now (a worker's GET was refused as expired).
    var credentialsRejected: (@Sendable () -> Void)?
    /// Bulk orders the transport holds (for `EngineSettings.maxBulkOrders`).
    var bulkOut = 0

    /// A scheduler over `transport`. `onComplete` (or the listener given to `start`) hears
    /// about every finished fetch.
    public init(settings: EngineSettings, transport: FetchTransport, logger: Logger,
                onComplete: (@Sendable (FetchCompletion) -> Void)? = nil) {
        self.settings = settings
        self.transport = transport
        self.logger = logger
        self.onComplete = onComplete
    }

    /// A scheduler over a pool of `workerExecutable __worker` processes (production).
    public convenience init(settings: EngineSettings, workerExecutable: String, builder: S3RequestBuilder,
                            logger: Logger, onComplete: (@Sendable (FetchCompletion) -> Void)? = nil) {
        self.init(settings: settings,
                  transport: WorkerPoolTransport(settings: settings, workerExecutable: workerExecutable,
                                                 builder: builder, logger: logger),
                  logger: logger, onComplete: onComplete)
    }

    /// Starts the transport and the event thread. With `listener`, completions (and block
    /// landings, with `landings`) go to it; the engine holds it until `stop`.
    public func start(reportingTo listener: FetchListener? = nil, landings: Bool = true) throws {
        if let listener {
            onComplete = { listener.completed($0) }
            if landings { onLanded = { listener.blocksLanded(tag: $0, first: $1, crcs: $2) } }
        }
        try transport.start()
        let t = Thread { [self] in self.loop() }
        t.name = "soak-engine"
        lock.lock(); thread = t; lock.unlock()
        t.start()
    }

    /// Queues a fetch. `tag` is returned in the completion (the caller's own reference).
    @discardableResult
    public func submit(bucket: String, key: String, etag: String?, range: ClosedRange<Int64>, path: String,
                       fileOffset: Int64, publish: PublishSpec? = nil, blockSize: Int64? = nil,
                       lane: Lane = .bulk, tag: Int = 0) -> Int {
        submit(bucket: bucket, key: key, etag: etag, range: range, root: nil, path: path, fileOffset: fileOffset,
               publish: publish, blockSize: blockSize, lane: lane, tag: tag)
    }

    /// As above, with `path` (and `publish.finalPath`) relative to the download destination `root`.
    @discardableResult
    public func submit(bucket: String, key: String, etag: String?, range: ClosedRange<Int64>, root: String?,
                       path: String, fileOffset: Int64, publish: PublishSpec? = nil, blockSize: Int64? = nil,
                       lane: Lane = .bulk, tag: Int = 0) -> Int {
        lock.lock()
        let id = nextID; nextID += 1
        var o = FetchOrder(id: id, bucket: bucket, key: key, etag: etag, start: range.lowerBound,
                           end: range.upperBound, path: path, fileOffset: fileOffset, publish: publish,
                           blockSize: blockSize, lane: lane)
        o.root = root
        o.direct = settings.directIO.applies(to: o)
        jobs[id] = Job(original: o, current: o, lane: lane, tag: tag)
        queue.push(id, lane: lane)
        lock.unlock()
        transport.wake()
        return id
    }

    /// Moves a queued or not-yet-started fetch to a higher lane (a mount read wanting bytes a
    /// prefetch already asked for). Returns false if it is unknown or already in that lane or higher.
    @discardableResult
    public func promote(_ id: Int, to lane: Lane) -> Bool {
        lock.lock()
        guard var job = jobs[id], lane < job.lane else { lock.unlock(); return false }
        if job.dispatched && job.lane == .bulk { bulkOut -= 1 }
        job.lane = lane
        job.current.lane = lane
        jobs[id] = job
        if queue.remove(where: { $0 == id }) != nil {
            queue.pushFront(id, lane: lane)
        } else if job.dispatched {
            transport.promote(id, to: lane)
        }
        lock.unlock()
        transport.wake()
        return true
    }

    /// Takes back a queued fetch no executor has yet (it completes never). False if it was
    /// dispatched, is waiting out a retry, or is unknown.
    public func withdraw(_ id: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard jobs[id] != nil, queue.remove(where: { $0 == id }) != nil else { return false }
        jobs[id] = nil
        return true
    }

    public func snapshot() -> EngineStats {
        lock.lock(); defer { lock.unlock() }
        var s = stats
        let t = transport.status()
        s.workers = t.executors
        s.targetWorkers = t.targetExecutors
        s.inflight = t.inflight
        s.workerRestarts = t.restarts
        s.rate = t.rate
        s.queued = queue.readyCount + queue.delayedCount
        s.queuedByLane = Lane.allCases.map { queue.count(in: $0) }
        return s
    }

    /// New credentials (a refresh): requests started from now on are signed with them.
    public func updateCredentials(_ credentials: Credentials) {
        transport.updateCredentials(credentials)
    }

    /// Follows `keeper`: the current credentials now and every refresh after, until `stop`.
    public func follow(_ keeper: CredentialKeeper) {
        let id = keeper.subscribe { [weak self] in self?.updateCredentials($0) }
        lock.lock(); defer { lock.unlock() }
        unfollow.append { keeper.unsubscribe(id) }
        credentialsRejected = { keeper.requestRefresh() }
    }

    /// PIDs of live worker processes (for tests and `soak status`).
    public func workerPIDs() -> [pid_t] { transport.executorPIDs() }

    /// Stops now: the transport abandons in-flight work (never reported complete) and the event
    /// thread ends. Safe to call more than once.
    public func stop() {
        lock.lock()
        if stopping { lock.unlock(); waitStopped(); return }
        stopping = true
        let leave = unfollow
        unfollow = []
        let running = thread != nil
        lock.unlock()
        for f in leave { f() }
        if running {
            transport.wake()
            waitStopped()
        } else {
            transport.stop()
        }
    }

    func waitStopped() {
        stoppedCond.lock()
        while !stopped && thread != nil { stoppedCond.wait() }
        stoppedCond.unlock()
    }

    /// Wakes the event thread.
    func wake() { transport.wake() }

    // MARK: - Event loop (engine thread)

    func loop() {
        while true {
            lock.lock()
            if stopping { break }
            var timeout = 0.1  // bounds how late a retry's due time is noticed
            if let due = queue.nextDue { timeout = max(0, min(timeout, due - MonotonicTime.now())) }
            let backlog = queue.readyCount > 0
            lock.unlock()

            let events = transport.poll(timeout: timeout, backlog: backlog)

            lock.lock()
            for e in events { apply(e) }
            dispatch()
            let completions = onCompleteLater
            onCompleteLater.removeAll()
            let landings = landedLater
            landedLater.removeAll()
            let latencies = latenciesLater
            latenciesLater.removeAll()
            let (complete, landed, latency) = (onComplete, onLanded, onFetchLatency)
            lock.unlock()
            if let latency { for (l, lane) in latencies { latency(l, lane) } }
            if let landed { for (tag, first, crcs) in landings { landed(tag, first, crcs) } }
            if let complete { for c in completions { complete(c) } }
        }
        // Stopping: abandon in-flight work.
        onComplete = nil
        onLanded = nil
        lock.unlock()
        transport.stop()
        stoppedCond.lock(); stopped = true; stoppedCond.broadcast(); stoppedCond.unlock()
    }

    var onCompleteLater: [FetchCompletion] = []
    /// Block landings to hand to `onLanded` outside the lock: (tag, first block, CRCs).
    var landedLater: [(Int, Int, [UInt32])] = []
    var latenciesLater: [(Double, Lane)] = []
    /// Called on the engine thread with each fetch's time to first byte (seconds) and lane.
    public var onFetchLatency: (@Sendable (Double, Lane) -> Void)?
    /// Called on the engine thread when blocks of a block order are written, before it is done.
    public var onLanded: (@Sendable (_ tag: Int, _ firstBlock: Int, _ crcs: [UInt32]) -> Void)?
}
