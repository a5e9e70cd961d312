/// The engine: a scheduler over a dynamic pool of worker processes.
///
/// How it works. Callers `submit` byte-range fetches into lanes of a `WorkQueue`. One event
/// thread owns everything else: it `poll`s the workers' report pipes and a wake pipe, hands
/// ready work to the least-loaded worker with a free slot (highest lane first), turns reports
/// into completions, and every `optimizationInterval` feeds a throughput sample to the
/// `PoolOptimizer`, then spawns or retires workers to match its target.
///
/// Failures: a retryable error goes back to the queue after a full-jitter backoff (honouring
/// Retry-After), resuming after the bytes already written; a worker that exits, crashes or
/// stays silent for `hangTimeout` is killed and reaped, and its orders are requeued from their
/// last reported offset. Nothing is reported complete unless its worker said every byte landed.
import CSys
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

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
        /// The worker holding it, once dispatched (for promotion).
        var worker: ObjectIdentifier?
    }

    let settings: EngineSettings
    let executable: String
    /// What a new worker is configured with (credentials included: `updateCredentials`).
    var workerConfig: WorkerConfig
    let logger: Logger
    let onComplete: @Sendable (FetchCompletion) -> Void
    /// Asked after a 412 on If-Match (set before `start`): the same ETag retries the order, any
    /// other answer completes it with the 412 and the answer. Without it a 412 fails at once
    /// (the mount, which answers ESTALE and revalidates on the next open).
    public var versionCheck: VersionChecker?

    let lock = NSLock()
    var queue = WorkQueue<Int>()
    var jobs: [Int: Job] = [:]
    var nextID = 1
    var workers: [WorkerProcess] = []
    var optimizer: PoolOptimizer
    var stats = EngineStats()
    var random = SystemRandomNumberGenerator()
    var wakeFDs: [Int32] = [-1, -1]
    var thread: Thread?
    var stopping = false
    var stopped = false
    let stoppedCond = NSCondition()
    // Sampling window for the optimizer.
    var windowStart = MonotonicTime.now()
    var windowBytes: Int64 = 0
    var windowThrottled = 0
    var windowErrors = 0
    var windowLatencies: [Double] = []
    var spawnFailures = 0
    /// Unsubscribes from credential keepers (`follow`).
    var unfollow: [@Sendable () -> Void] = []
    /// Asks the followed keeper for new keys now (a worker's GET was refused as expired).
    var credentialsRejected: (@Sendable () -> Void)?

    public init(settings: EngineSettings, workerExecutable: String, builder: S3RequestBuilder, logger: Logger,
                onComplete: @escaping @Sendable (FetchCompletion) -> Void) {
        self.settings = settings
        self.executable = workerExecutable
        var config = WorkerConfig(builder: builder, transport: settings.transport,
                                  slots: settings.slotsPerWorker, logLevel: settings.logLevel)
        config.logFile = settings.logFile
        self.workerConfig = config
        self.logger = logger
        self.onComplete = onComplete
        let initial = min(max(settings.initialWorkers, settings.minWorkers), settings.maxWorkers)
        self.optimizer = PoolOptimizer(config: OptimizerConfig(minWorkers: settings.minWorkers,
                                                               maxWorkers: settings.maxWorkers,
                                                               maxBytesPerSecond: settings.maxBytesPerSecond),
                                       initialWorkers: initial)
    }

    /// Spawns the initial workers and starts the event thread.
    public func start() throws {
        // Orders go to workers over pipes. A worker that died or stopped reading makes the next
        // write fail with EPIPE, which `dispatch` handles by replacing it; left at its default,
        // SIGPIPE would kill the process the engine runs in (a mount, a prewarm) instead.
        signal(SIGPIPE, SIG_IGN)
        guard csys_pipe2(&wakeFDs, O_CLOEXEC | O_NONBLOCK) == 0 else {
            throw LocalIOError(errno: errno, operation: "pipe2", path: "engine wake pipe")
        }
        lock.lock()
        do {
            for _ in 0..<optimizer.target { try spawnWorker() }
        } catch {
            lock.unlock()
            throw error
        }
        lock.unlock()
        let t = Thread { [self] in self.loop() }
        t.name = "soak-engine"
        thread = t
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
        wake()
        return id
    }

    /// Moves a queued or not-yet-started fetch to a higher lane (a mount read wanting bytes a
    /// prefetch already asked for). Returns false if it is unknown or already in that lane or higher.
    @discardableResult
    public func promote(_ id: Int, to lane: Lane) -> Bool {
        lock.lock()
        guard var job = jobs[id], lane < job.lane else { lock.unlock(); return false }
        job.lane = lane
        job.current.lane = lane
        jobs[id] = job
        if queue.remove(where: { $0 == id }) != nil {
            queue.pushFront(id, lane: lane)
        } else if let wid = job.worker, let w = workers.first(where: { ObjectIdentifier($0) == wid && !$0.exited }) {
            try? w.queue(.promote(id: id, lane: lane))
        }
        lock.unlock()
        wake()
        return true
    }

    /// Takes back a queued fetch no worker has yet (it completes never). False if it was
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
        s.workers = workers.filter { !$0.exited }.count
        s.targetWorkers = optimizer.target
        s.queued = queue.readyCount + queue.delayedCount
        s.queuedByLane = Lane.allCases.map { queue.count(in: $0) }
        s.inflight = workers.reduce(0) { $0 + $1.inflight.count }
        return s
    }

    /// New credentials (a refresh): every live worker signs the requests it starts from now on
    /// with them, and workers started later are configured with them. They travel over the
    /// workers' pipes, like the first ones.
    public func updateCredentials(_ credentials: Credentials) {
        lock.lock(); defer { lock.unlock() }
        workerConfig.builder.credentials = credentials
        // A worker whose pipe is gone is dying: its replacement gets the new configuration.
        for w in workers where !w.exited { try? w.send(.credentials(credentials)) }
    }

    /// Follows `keeper`: the current credentials now and every refresh after, until `stop`.
    public func follow(_ keeper: CredentialKeeper) {
        let id = keeper.subscribe { [weak self] in self?.updateCredentials($0) }
        lock.lock(); defer { lock.unlock() }
        unfollow.append { keeper.unsubscribe(id) }
        credentialsRejected = { keeper.requestRefresh() }
    }

    /// PIDs of live workers (for tests and `soak status`).
    public func workerPIDs() -> [pid_t] {
        lock.lock(); defer { lock.unlock() }
        return workers.filter { !$0.exited }.map(\.pid)
    }

    /// Stops now: workers are told to exit (in-flight transfers are abandoned, never reported
    /// complete) and reaped; the event thread ends. Safe to call more than once.
    public func stop() {
        lock.lock()
        if stopping { lock.unlock(); waitStopped(); return }
        stopping = true
        let leave = unfollow
        unfollow = []
        lock.unlock()
        for f in leave { f() }
        wake()
        waitStopped()
    }

    func waitStopped() {
        stoppedCond.lock()
        while !stopped && thread != nil { stoppedCond.wait() }
        stoppedCond.unlock()
    }

    /// A byte is in the wake pipe that the event thread has not yet taken (guarded by `lock`).
    var wakePending = false

    /// Wakes the event thread. One byte per wait, not per call: a download submitting 5000
    /// objects wrote the pipe 5000 times and woke the thread nearly as often.
    func wake() {
        lock.lock()
        let needed = !wakePending
        wakePending = true
        lock.unlock()
        guard needed else { return }
        var b: UInt8 = 1
        if write(wakeFDs[1], &b, 1) != 1 && errno != EAGAIN {  // EAGAIN: full, so a byte is there
            lock.lock(); wakePending = false; lock.unlock()  // not started yet (or stopped): no byte
        }
    }

    // MARK: - Event loop (engine thread)

    func loop() {
        var completions: [FetchCompletion] = []
        while true {
            lock.lock()
            if stopping { break }
            var fds = [pollfd(fd: wakeFDs[0], events: Int16(POLLIN), revents: 0)]
            let live = workers.filter { !$0.exited }
            for w in live { fds.append(pollfd(fd: w.fromFD, events: Int16(POLLIN), revents: 0)) }
            var timeout = 100.0  // ms: bounds the hang checks and optimizer ticks
            if let due = queue.nextDue { timeout = max(0, min(timeout, (due - MonotonicTime.now()) * 1000)) }
            lock.unlock()

            _ = poll(&fds, nfds_t(fds.count), Int32(timeout.rounded(.up)))

            lock.lock()
            if fds[0].revents != 0 {
                // Cleared before draining: a `wake` from now on writes again, and what it
                // announces is either seen by this round's `dispatch` or wakes the next poll.
                wakePending = false
                var sink: (UInt64, UInt64) = (0, 0)
                while read(wakeFDs[0], &sink, MemoryLayout.size(ofValue: sink)) > 0 {}
            }
            for (i, w) in live.enumerated() where fds[i + 1].revents != 0 {
                let open = w.readAvailable()
                drainReports(w, into: &completions)
                if !open || w.exited { workerDied(w, reason: open ? "misbehaved" : "exited") }
            }
            let now = MonotonicTime.now()
            for w in workers where !w.exited && !w.inflight.isEmpty && now - w.lastHeard > settings.hangTimeout {
                // Its orders are retried (an order that keeps hanging fails, naming it): info level.
                logger.info("worker \(w.pid) silent for \(Int(settings.hangTimeout)) s; killing it")
                w.terminate(force: true)
                workerDied(w, reason: "hung")
            }
            optimizeIfDue(now)
            balanceWorkers()
            dispatch()
            completions += onCompleteLater
            onCompleteLater.removeAll()
            let landings = landedLater
            landedLater.removeAll()
            let latencies = latenciesLater
            latenciesLater.removeAll()
            lock.unlock()
            if let onFetchLatency { for (l, lane) in latencies { onFetchLatency(l, lane) } }
            if let onLanded { for (tag, first, crcs) in landings { onLanded(tag, first, crcs) } }
            for c in completions { onComplete(c) }
            completions.removeAll()
        }
        // Stopping: abandon in-flight work; close every worker and reap it.
        let all = workers
        lock.unlock()
        for w in all where !w.exited { w.closeInput() }
        for w in all where !w.exited { w.terminate(force: false, grace: 2) }
        stoppedCond.lock(); stopped = true; stoppedCond.broadcast(); stoppedCond.unlock()
    }

    func drainReports(_ w: WorkerProcess, into completions: inout [FetchCompletion]) {
        defer {
            // A worker writing without newlines would make us buffer without bound.
            if w.reader.pending > LineBuffer.maxLine && !w.exited {
                logger.error("worker \(w.pid) sent an over-long report; replacing it")
                w.terminate(force: true)
            }
        }
        while let line = w.reader.nextLine() {
            w.lastHeard = MonotonicTime.now()
            guard let msg = try? LineCodec.decode(FromWorker.self, line) else {
                logger.error("worker \(w.pid) sent an unreadable report; replacing it")
                w.terminate(force: true)
                return
            }
            switch msg {
            case .ready: w.ready = true
            case .progress(let p):
                for (id, bytes) in p { account(w, id: id, bytes: bytes) }
            case .landed(let id, let first, let crcs):
                // Block indices from the order's original start (a retry starts later).
                guard let job = jobs[id], let bs = job.current.blockSize, w.inflight[id] != nil else { break }
                let base = Int((job.current.start - job.original.start) / bs)
                landedLater.append((job.tag, base + first, crcs))
            case .done(let r):
                account(w, id: r.id, bytes: r.bytes)
                w.inflight[r.id] = nil
                finish(report: r, into: &completions)
            }
        }
    }

    /// Adds newly written bytes of an order to the counters.
    func account(_ w: WorkerProcess, id: Int, bytes: Int64) {
        guard let before = w.inflight[id] else { return }
        if bytes > before {
            stats.bytes += bytes - before
            if let lane = jobs[id]?.lane { stats.bytesByLane[lane.rawValue] += bytes - before }
            windowBytes += bytes - before
            w.inflight[id] = bytes
        }
    }

    func finish(report r: FetchReport, into completions: inout [FetchCompletion]) {
        guard var job = jobs[r.id] else { return }
        stats.getObjectRequests = stats.getObjectRequests ?? [:]
        stats.getObjectRequests![RequestOutcome.label(r.error), default: 0] += 1
        if let lat = r.firstByteLatency {
            windowLatencies.append(lat)
            if onFetchLatency != nil { latenciesLater.append((lat, job.lane)) }
        }
        guard let err = r.error else {
            jobs[r.id] = nil
            stats.completed += 1
            completions.append(FetchCompletion(order: job.original, tag: job.tag, error: nil, crcs: job.crcs + r.crcs))
            return
        }
        if err.isThrottle { stats.throttled += 1; windowThrottled += 1 } else { windowErrors += 1 }
        if err.kind == .stalled { job.current.stalls += 1 }  // its next attempt waits longer
        // Resume after the bytes that landed; If-Match keeps them the same version.
        let keep = resumableBytes(job.current, reported: r.bytes, crcs: r.crcs.count)
        job.crcs += r.crcs.prefix(job.current.blockSize == nil ? 0 : r.crcs.count)
        job.current.start += keep
        job.current.fileOffset += keep
        stats.bytes -= r.bytes - keep  // they will be fetched again
        job.attempts += 1
        if err.isPreconditionFailed, let checker = versionCheck, let etag = job.original.etag {
            // Parked (in `jobs`, not queued) until the checker answers; this attempt counted.
            job.worker = nil
            jobs[r.id] = job
            let id = r.id
            checker.ask(bucket: job.original.bucket, key: job.original.key, etag: etag) { [weak self] answer in
                self?.versionAnswered(id, error: err, answer)
            }
            return
        }
        if err.isCredentialRejection { credentialsRejected?() }
        if err.isRetryable, job.current.start <= job.current.end,
           let delay = settings.retry.delay(afterAttempt: job.attempts, retryAfter: err.retryAfter, random: &random) {
            stats.retries += 1
            logger.debug("retrying \(job.original.key) in \(String(format: "%.2f", delay)) s: \(err)")
            jobs[r.id] = job
            queue.push(r.id, lane: job.lane, due: MonotonicTime.now() + delay)
            return
        }
        jobs[r.id] = nil
        stats.failed += 1
        var final = err
        if job.attempts > 1 { final.attempts = job.attempts }
        completions.append(FetchCompletion(order: job.original, tag: job.tag, error: final, crcs: job.crcs))
    }

    /// The checker's answer about an order parked after a 412 (checker's queue): unchanged, it
    /// is retried like any retryable failure, resuming where it was; else it completes.
    func versionAnswered(_ id: Int, error err: S3Error, _ answer: VersionAnswer) {
        lock.lock()
        guard !stopping, var job = jobs[id] else { lock.unlock(); return }
        if answer == .unchanged, job.current.start <= job.current.end,
           let delay = settings.retry.delay(afterAttempt: job.attempts, retryAfter: nil, random: &random) {
            stats.retries += 1
            job.worker = nil
            jobs[id] = job
            queue.push(id, lane: job.lane, due: MonotonicTime.now() + delay)
            lock.unlock()
            wake()
            return
        }
        jobs[id] = nil
        stats.failed += 1
        var final = err
        if job.attempts > 1 { final.attempts = job.attempts }
        onCompleteLater.append(FetchCompletion(order: job.original, tag: job.tag, error: final, crcs: job.crcs,
                                               version: answer))
        lock.unlock()
        wake()
    }

    /// How much of a failed attempt a retry keeps: nothing of an unnamed file; whole blocks of a
    /// block order (their CRCs were reported); every contiguous byte otherwise.
    func resumableBytes(_ o: FetchOrder, reported: Int64, crcs: Int) -> Int64 {
        guard o.isResumable else { return 0 }
        guard let bs = o.blockSize else { return reported }
        return min(reported, Int64(crcs) * bs)
    }

    var onCompleteLater: [FetchCompletion] = []
    /// Block landings to hand to `onLanded` outside the lock: (tag, first block, CRCs).
    var landedLater: [(Int, Int, [UInt32])] = []
    var latenciesLater: [(Double, Lane)] = []
    /// Called on the engine thread with each fetch's time to first byte (seconds) and lane.
    public var onFetchLatency: (@Sendable (Double, Lane) -> Void)?
    /// Called on the engine thread when blocks of a block order are written, before it is done.
    public var onLanded: (@Sendable (_ tag: Int, _ firstBlock: Int, _ crcs: [UInt32]) -> Void)?

    /// Orders beyond a worker's bulk capacity that urgent and read-ahead work may take, so a
    /// saturated pool still starts a mount read at once (the worker runs it in a spare slot).
    static let priorityReserve = 8

    func dispatch() {
        let now = MonotonicTime.now()
        let capacity = settings.slotsPerWorker + settings.prefetchDepth
        queue.release(now: now)
        var bulkOut = settings.maxBulkOrders == nil ? 0
            : workers.reduce(0) { n, w in n + w.inflight.keys.filter { jobs[$0]?.lane == .bulk }.count }
        while let lane = queue.topLane() {
            if lane == .bulk, let cap = settings.maxBulkOrders, bulkOut >= cap { break }
            let limit = lane == .bulk ? capacity : capacity + Self.priorityReserve
            let candidates = workers.filter { !$0.exited && !$0.retiring && $0.inflight.count < limit }
            guard let w = candidates.min(by: { $0.inflight.count < $1.inflight.count }) else { break }
            guard let (id, _) = queue.pop(now: now) else { break }
            guard var job = jobs[id] else { continue }
            do {
                job.current.lane = job.lane
                try w.queue(.fetch(job.current))
                job.worker = ObjectIdentifier(w)
                jobs[id] = job
                w.inflight[id] = 0  // bytes written from job.current.start, as the worker reports them
                if job.lane == .bulk { bulkOut += 1 }
                if w.inflight.count == 1 { w.lastHeard = now }
            } catch {
                queue.pushFront(id, lane: job.lane)
                break
            }
        }
        // One write per worker per round; a worker that stopped reading is replaced and every
        // order it held (sent or not) is requeued.
        for w in workers where !w.exited {
            do { try w.flush() } catch {
                w.terminate(force: true)
                workerDied(w, reason: "stopped reading orders")
            }
        }
    }
}
