/// The production `FetchTransport`: a dynamic pool of worker processes (`soak __worker`), each
/// running its orders on a libcurl multi handle and writing into the files itself.
///
/// How it works. Orders go to the least-loaded worker with a free slot, queued per worker and
/// written to its stdin together at the start of the next `poll` (one write per worker per
/// round). `poll` waits on the workers' report pipes and a wake pipe, turns report lines into
/// events, kills a worker silent for `hangTimeout` while it holds orders, and every
/// `optimizationInterval` feeds a throughput sample to the `PoolOptimizer`, then spawns or
/// retires workers to match its target (each gets its share of MAX_SPEED). A worker that exits,
/// crashes, hangs or stops reading is reaped and its orders are reported `lost`.
import CSys
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

public final class WorkerPoolTransport: FetchTransport, @unchecked Sendable {  // @unchecked: `WorkerProcess`es are used outside `lock` too
    let settings: EngineSettings
    let executable: String
    /// What a new worker is configured with (credentials included: `updateCredentials`).
    var workerConfig: WorkerConfig
    let logger: Logger

    let lock = NSLock()
    var workers: [WorkerProcess] = []
    var optimizer: PoolOptimizer
    /// Events not yet returned by `poll`.
    var events: [TransportEvent] = []
    var wakeFDs: [Int32] = [-1, -1]
    /// A byte is in the wake pipe that `poll` has not yet taken.
    var wakePending = false
    var stopped = false
    var restarts = 0
    var rate = 0.0
    // Sampling window for the optimizer.
    var windowStart = MonotonicTime.now()
    var windowBytes: Int64 = 0
    var windowThrottled = 0
    var windowErrors = 0
    var windowLatencies: [Double] = []
    var spawnFailures = 0

    /// Orders beyond a worker's bulk capacity that urgent and read-ahead work may take, so a
    /// saturated pool still starts a mount read at once (the worker runs it in a spare slot).
    static let priorityReserve = 8

    public init(settings: EngineSettings, workerExecutable: String, builder: S3RequestBuilder, logger: Logger) {
        self.settings = settings
        self.executable = workerExecutable
        var config = WorkerConfig(builder: builder, transport: settings.transport,
                                  slots: settings.slotsPerWorker, logLevel: settings.logLevel)
        config.logFile = settings.logFile
        self.workerConfig = config
        self.logger = logger
        let initial = min(max(settings.initialWorkers, settings.minWorkers), settings.maxWorkers)
        self.optimizer = PoolOptimizer(config: OptimizerConfig(minWorkers: settings.minWorkers,
                                                               maxWorkers: settings.maxWorkers,
                                                               maxBytesPerSecond: settings.maxBytesPerSecond),
                                       initialWorkers: initial)
    }

    /// Spawns the initial workers.
    public func start() throws {
        // Orders go to workers over pipes. A worker that died or stopped reading makes the next
        // write fail with EPIPE, which `flushOrders` handles by replacing it; left at its default,
        // SIGPIPE would kill the process the engine runs in (a mount, a prewarm) instead.
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [-1, -1]
        guard csys_pipe2(&fds, O_CLOEXEC | O_NONBLOCK) == 0 else {
            throw LocalIOError(errno: errno, operation: "pipe2", path: "engine wake pipe")
        }
        lock.lock(); defer { lock.unlock() }
        wakeFDs = fds
        for _ in 0..<optimizer.target { try spawnWorker() }
    }

    func limit(for lane: Lane) -> Int {
        let capacity = settings.slotsPerWorker + settings.prefetchDepth
        return lane == .bulk ? capacity : capacity + Self.priorityReserve
    }

    var takingWork: [WorkerProcess] { workers.filter { !$0.exited && !$0.retiring } }

    public func freeSlots(for lane: Lane) -> Int {
        lock.lock(); defer { lock.unlock() }
        let l = limit(for: lane)
        return takingWork.reduce(0) { $0 + max(0, l - $1.inflight.count) }
    }

    public func start(_ order: FetchOrder) -> Bool {
        lock.lock(); defer { lock.unlock() }
        let l = limit(for: order.lane)
        guard let w = takingWork.filter({ $0.inflight.count < l }).min(by: { $0.inflight.count < $1.inflight.count })
        else { return false }
        do { try w.queue(.fetch(order)) } catch { return false }
        w.inflight[order.id] = 0  // bytes written from order.start, as the worker reports them
        if w.inflight.count == 1 { w.lastHeard = MonotonicTime.now() }
        return true
    }

    public func promote(_ id: Int, to lane: Lane) {
        lock.lock(); defer { lock.unlock() }
        if let w = holder(of: id) { try? w.queue(.promote(id: id, lane: lane)) }
    }

    func holder(of id: Int) -> WorkerProcess? { workers.first { !$0.exited && $0.inflight[id] != nil } }

    public func status() -> TransportStatus {
        lock.lock(); defer { lock.unlock() }
        var s = TransportStatus()
        s.executors = workers.filter { !$0.exited }.count
        s.targetExecutors = optimizer.target
        s.inflight = workers.reduce(0) { $0 + $1.inflight.count }
        s.restarts = restarts
        s.rate = rate
        return s
    }

    public func executorPIDs() -> [pid_t] {
        lock.lock(); defer { lock.unlock() }
        return workers.filter { !$0.exited }.map(\.pid)
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

    /// Wakes `poll`. One byte per wait, not per call: a download submitting 5000 objects wrote
    /// the pipe 5000 times and woke the thread nearly as often.
    public func wake() {
        lock.lock()
        guard wakeFDs[1] >= 0 else { lock.unlock(); return }  // not started: the first poll looks anyway
        let needed = !wakePending
        wakePending = true
        lock.unlock()
        guard needed else { return }
        var b: UInt8 = 1
        if write(wakeFDs[1], &b, 1) != 1 && errno != EAGAIN {  // EAGAIN: full, so a byte is there
            lock.lock(); wakePending = false; lock.unlock()  // stopped: no byte
        }
    }

    public func poll(timeout: Double, backlog: Bool) -> [TransportEvent] {
        lock.lock()
        flushOrders()
        var fds = [pollfd(fd: wakeFDs[0], events: Int16(POLLIN), revents: 0)]
        let live = workers.filter { !$0.exited }
        for w in live { fds.append(pollfd(fd: w.fromFD, events: Int16(POLLIN), revents: 0)) }
        // Bounds the hang checks and optimizer ticks.
        let ms = events.isEmpty ? Int32((min(timeout, 0.1) * 1000).rounded(.up)) : 0
        lock.unlock()

        _ = Glibc.poll(&fds, nfds_t(fds.count), max(ms, 0))

        lock.lock(); defer { lock.unlock() }
        if fds[0].revents != 0 {
            // Cleared before draining: a `wake` from now on writes again, and what it announces
            // is either seen by the scheduler's round after this poll or wakes the next one.
            wakePending = false
            var sink: (UInt64, UInt64) = (0, 0)
            while read(wakeFDs[0], &sink, MemoryLayout.size(ofValue: sink)) > 0 {}
        }
        for (i, w) in live.enumerated() where fds[i + 1].revents != 0 {
            let open = w.readAvailable()
            drainReports(w)
            if !open || w.exited { workerDied(w, reason: open ? "misbehaved" : "exited") }
        }
        let now = MonotonicTime.now()
        for w in workers where !w.exited && !w.inflight.isEmpty && now - w.lastHeard > settings.hangTimeout {
            // Its orders are retried (an order that keeps hanging fails, naming it): info level.
            logger.info("worker \(w.pid) silent for \(Int(settings.hangTimeout)) s; killing it")
            w.terminate(force: true)
            workerDied(w, reason: "hung")
        }
        optimizeIfDue(now, backlog: backlog)
        balanceWorkers()
        let out = events
        events.removeAll()
        return out
    }

    /// Sends every worker the orders queued for it; a worker that stopped reading is replaced
    /// and every order it held (sent or not) is lost.
    func flushOrders() {
        for w in workers where !w.exited {
            do { try w.flush() } catch {
                w.terminate(force: true)
                workerDied(w, reason: "stopped reading orders")
            }
        }
    }

    /// Stops now: workers are told to exit (in-flight transfers are abandoned, never reported
    /// complete) and reaped.
    public func stop() {
        lock.lock()
        guard !stopped else { lock.unlock(); return }
        stopped = true
        let all = workers
        lock.unlock()
        for w in all where !w.exited { w.closeInput() }
        for w in all where !w.exited { w.terminate(force: false, grace: 2) }
    }

    func drainReports(_ w: WorkerProcess) {
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
                guard w.inflight[id] != nil else { break }
                events.append(.landed(id: id, first: first, crcs: crcs))
            case .done(let r):
                guard w.inflight[r.id] != nil else { break }  // not an order this worker holds
                account(w, id: r.id, bytes: r.bytes)
                w.inflight[r.id] = nil
                if let lat = r.firstByteLatency { windowLatencies.append(lat) }
                if let err = r.error { if err.isThrottle { windowThrottled += 1 } else { windowErrors += 1 } }
                events.append(.done(r))
            }
        }
    }

    /// Newly written bytes of an order: the optimizer's window and a `progress` event.
    func account(_ w: WorkerProcess, id: Int, bytes: Int64) {
        guard let before = w.inflight[id], bytes > before else { return }
        windowBytes += bytes - before
        w.inflight[id] = bytes
        events.append(.progress(id: id, bytes: bytes))
    }
}
