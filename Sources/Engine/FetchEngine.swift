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
import Synchronization
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

public final class FetchEngine: Sendable {
    let settings: EngineSettings
    let transport: FetchTransport
    let logger: Logger
    /// Everything the event thread and callers share (`Scheduler`, in FetchEngine+Events).
    let state: Mutex<Scheduler>
    /// Broadcast when the event thread has ended (`Scheduler.ended`).
    let stoppedCond = NSCondition()

    /// Asked after a 412 on If-Match (set before `start`): the same ETag retries the order, any
    /// other answer completes it with the 412 and the answer. Without it a 412 fails at once
    /// (the mount, which answers ESTALE and revalidates on the next open).
    public var versionCheck: VersionChecker? {
        get { state.withLock { $0.versionCheck } }
        set { state.withLock { $0.versionCheck = newValue } }
    }
    /// Called on the engine thread with each fetch's time to first byte (seconds) and lane.
    public var onFetchLatency: (@Sendable (Double, Lane) -> Void)? {
        get { state.withLock { $0.onFetchLatency } }
        set { state.withLock { $0.onFetchLatency = newValue } }
    }
    /// Called on the engine thread when blocks of a block order are written, before it is done.
    public var onLanded: (@Sendable (_ tag: Int, _ firstBlock: Int, _ crcs: [UInt32]) -> Void)? {
        get { state.withLock { $0.onLanded } }
        set { state.withLock { $0.onLanded = newValue } }
    }

    /// A scheduler over `transport`. `onComplete` (or the listener given to `start`) hears
    /// about every finished fetch.
    public init(settings: EngineSettings, transport: FetchTransport, logger: Logger,
                onComplete: (@Sendable (FetchCompletion) -> Void)? = nil) {
        self.settings = settings
        self.transport = transport
        self.logger = logger
        var s = Scheduler(settings: settings, transport: transport, logger: logger)
        s.onComplete = onComplete
        self.state = Mutex(s)
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
            state.withLock { s in
                s.onComplete = { listener.completed($0) }
                if landings { s.onLanded = { listener.blocksLanded(tag: $0, first: $1, crcs: $2) } }
            }
        }
        try transport.start()
        let t = Thread { [self] in self.loop() }
        t.name = "soak-engine"
        state.withLock { $0.started = true }
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
        let direct = settings.directIO
        let id = state.withLock { s in
            let id = s.nextID; s.nextID += 1
            var o = FetchOrder(id: id, bucket: bucket, key: key, etag: etag, start: range.lowerBound,
                               end: range.upperBound, path: path, fileOffset: fileOffset, publish: publish,
                               blockSize: blockSize, lane: lane)
            o.root = root
            o.direct = direct.applies(to: o)
            s.jobs[id] = Job(original: o, current: o, lane: lane, tag: tag)
            s.queue.push(id, lane: lane)
            return id
        }
        transport.wake()
        return id
    }

    /// Moves a queued or not-yet-started fetch to a higher lane (a mount read wanting bytes a
    /// prefetch already asked for). Returns false if it is unknown or already in that lane or higher.
    @discardableResult
    public func promote(_ id: Int, to lane: Lane) -> Bool {
        let moved = state.withLock { s in s.promote(id, to: lane) }
        if moved { transport.wake() }
        return moved
    }

    /// Takes back a queued fetch no executor has yet (it completes never). False if it was
    /// dispatched, is waiting out a retry, or is unknown.
    public func withdraw(_ id: Int) -> Bool {
        state.withLock { s in
            guard s.jobs[id] != nil, s.queue.remove(where: { $0 == id }) != nil else { return false }
            s.jobs[id] = nil
            return true
        }
    }

    public func snapshot() -> EngineStats {
        let t = transport.status()
        var stats = state.withLock { s in
            var stats = s.stats
            stats.queued = s.queue.readyCount + s.queue.delayedCount
            stats.queuedByLane = Lane.allCases.map { s.queue.count(in: $0) }
            return stats
        }
        stats.workers = t.executors
        stats.targetWorkers = t.targetExecutors
        stats.inflight = t.inflight
        stats.workerRestarts = t.restarts
        stats.rate = t.rate
        return stats
    }

    /// New credentials (a refresh): requests started from now on are signed with them.
    public func updateCredentials(_ credentials: Credentials) {
        transport.updateCredentials(credentials)
    }

    /// Follows `keeper`: the current credentials now and every refresh after, until `stop`.
    public func follow(_ keeper: CredentialKeeper) {
        let id = keeper.subscribe { [weak self] in self?.updateCredentials($0) }
        state.withLock { s in
            s.unfollow.append { keeper.unsubscribe(id) }
            s.credentialsRejected = { keeper.requestRefresh() }
        }
    }

    /// PIDs of live worker processes (for tests and `soak status`).
    public func workerPIDs() -> [pid_t] { transport.executorPIDs() }

    /// Stops now: the transport abandons in-flight work (never reported complete) and the event
    /// thread ends. Safe to call more than once.
    public func stop() {
        let (again, leave, running) = state.withLock { s -> (Bool, [@Sendable () -> Void], Bool) in
            if s.stopping { return (true, [], s.started) }
            s.stopping = true
            defer { s.unfollow = [] }
            return (false, s.unfollow, s.started)
        }
        if again { if running { waitStopped() }; return }
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
        while !state.withLock({ $0.ended }) { stoppedCond.wait() }
        stoppedCond.unlock()
    }

    /// Wakes the event thread.
    func wake() { transport.wake() }

    // MARK: - Event loop (engine thread)

    func loop() {
        while true {
            let round = state.withLock { s -> (timeout: Double, backlog: Bool)? in
                if s.stopping { return nil }
                var timeout = 0.1  // bounds how late a retry's due time is noticed
                if let due = s.queue.nextDue { timeout = max(0, min(timeout, due - MonotonicTime.now())) }
                return (timeout, s.queue.readyCount > 0)
            }
            guard let round else { break }

            let events = transport.poll(timeout: round.timeout, backlog: round.backlog)

            let out = state.withLock { s in
                for e in events { s.apply(e) }
                s.dispatch()
                return s.takeOutbox()
            }
            deliver(out)
        }
        // Stopping: abandon in-flight work.
        state.withLock { s in s.onComplete = nil; s.onLanded = nil }
        transport.stop()
        stoppedCond.lock()
        state.withLock { $0.ended = true }
        stoppedCond.broadcast()
        stoppedCond.unlock()
    }

    /// Hands a round's results to their callbacks, outside the lock: latencies, landings and
    /// completions; then the version checks and credential refreshes the round asked for.
    func deliver(_ out: Outbox) {
        if let latency = out.onFetchLatency { for (l, lane) in out.latencies { latency(l, lane) } }
        if let landed = out.onLanded { for (tag, first, crcs) in out.landings { landed(tag, first, crcs) } }
        if let complete = out.onComplete { for c in out.completions { complete(c) } }
        if out.credentialsRejected { out.refreshCredentials?() }
        for q in out.versionQuestions {
            q.checker.ask(bucket: q.bucket, key: q.key, etag: q.etag) { [weak self] answer in
                self?.versionAnswered(q.id, error: q.error, answer)
            }
        }
    }

    /// The checker's answer about an order parked after a 412 (checker's queue): unchanged, it
    /// is retried like any retryable failure, resuming where it was; else it completes.
    func versionAnswered(_ id: Int, error err: S3Error, _ answer: VersionAnswer) {
        guard state.withLock({ s in s.versionAnswered(id, error: err, answer) }) else { return }
        wake()
    }
}

extension FetchEngine.Scheduler {
    /// Hands ready orders to the transport while it has room, highest lane first.
    mutating func dispatch() {
        let now = MonotonicTime.now()
        queue.release(now: now)
        while let lane = queue.topLane() {
            if lane == .bulk, let cap = settings.maxBulkOrders, bulkOut >= cap { break }
            guard transport.freeSlots(for: lane) > 0 else { break }
            guard let (id, _) = queue.pop(now: now) else { break }
            guard var job = jobs[id] else { continue }
            job.current.lane = job.lane
            guard transport.start(job.current) else {
                queue.pushFront(id, lane: job.lane)
                break
            }
            job.dispatched = true
            job.reported = 0  // bytes written from job.current.start, as the transport reports them
            jobs[id] = job
            if job.lane == .bulk { bulkOut += 1 }
        }
    }
}
