/// A started mount without its FUSE session: the namespace listed from the bucket, the engine
/// and fill scheduler, and the file system that answers requests, as `MountService.start()`
/// made them. Once mounted, `serve` starts what serves clients: the control socket (`soak
/// status`, `soak prewarm` handed over), the counter flusher and `--prefetch`. `stop` ends
/// everything the session runs.
import Cache
import Engine
import Foundation
import Logging
import S3
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public final class MountSession: Sendable {
    /// Hit and miss counts reach the cache's counters this often (and at `stop`).
    static let counterFlushSeconds = 5.0
    /// `stop` waits this long for the session's threads: `--prefetch` may be inside a listing
    /// request, which ends only when its retries do; the process exits after `stop` anyway.
    static let threadStopSeconds = 30.0
    /// Progress lines to a `soak prewarm` client at most this often.
    static let progressInterval = 0.25

    public let bucketID: Int64
    public let namespace: Namespace
    public let filesystem: MountFilesystem
    let engine: FetchEngine
    let filler: CacheFiller
    private let service: MountService
    private let metricsServer: MetricsServer?
    private let state = Mutex(State())
    private let stopPrefetch = Atomic<Bool>(false)
    /// Signalled by `stop`: the flusher's wait between flushes ends at once.
    private let flushWake = DispatchSemaphore(value: 0)
    /// Every thread `serve` started, until it ends.
    let threads = DispatchGroup()

    private struct State: Sendable {
        var control: ControlServer?
        var serving = false
        var servingStopped = false
        var stopped = false
    }

    init(service: MountService, bucketID: Int64, namespace: Namespace, filesystem: MountFilesystem,
         engine: FetchEngine, filler: CacheFiller, metricsServer: MetricsServer?) {
        self.service = service; self.bucketID = bucketID; self.namespace = namespace; self.filesystem = filesystem
        self.engine = engine; self.filler = filler; self.metricsServer = metricsServer
    }

    private var options: MountOptions { service.options }
    private var cache: DiskCache { service.cache }
    private var logger: Logger { service.logger }

    /// Starts serving clients (once): `--prefetch`, the control socket and the counter flusher.
    public func serve() {
        guard state.withLock({ s in defer { s.serving = true }; return !s.serving && !s.stopped }) else { return }
        if options.prefetch { spawn("soak-prefetch") { [self] in prefetch() } }
        let started = MonotonicTime.now()
        let control = ControlServer(cacheDir: cache.directory) { [self] req, send in
            switch req.op {
            case .status: _ = send(ControlReply(status: status(uptime: MonotonicTime.now() - started)))
            case .prewarm: prewarmForClient(req, send: send)
            }
        }
        do {
            try control.start()
            state.withLock { $0.control = control }
        } catch {
            logger.warning("no control socket: \(error)")
        }
        spawn("soak-counters") { [self] in
            while flushWake.wait(timeout: .now() + Self.counterFlushSeconds) == .timedOut { filesystem.flushCounters() }
        }
    }

    /// Stops taking clients: the control socket goes and `--prefetch` is told to stop. Reads
    /// are still answered (the FUSE session is closed after this).
    public func stopServing() {
        let control = state.withLock { s -> ControlServer? in
            guard !s.servingStopped else { return nil }
            s.servingStopped = true
            return s.control.take()
        }
        control?.stop()
        stopPrefetch.store(true, ordering: .relaxed)
    }

    /// Stops everything the session runs: clients, the engine (in-flight fetches are abandoned),
    /// the fill scheduler (after recording what landed), the threads `serve` started and the
    /// metrics listener; flushes the counters and checkpoints the index. Safe to call again.
    public func stop() {
        stopServing()
        guard state.withLock({ s in defer { s.stopped = true }; return !s.stopped }) else { return }
        flushWake.signal()
        engine.stop()
        filler.stop()
        if threads.wait(timeout: .now() + Self.threadStopSeconds) == .timedOut {
            logger.warning("a mount thread did not end within \(Int(Self.threadStopSeconds)) s; leaving it")
        }
        filesystem.flushCounters()
        try? cache.checkpoint()
        metricsServer?.stop()
    }

    /// What `soak status` shows.
    func status(uptime: Double) -> MountStatus {
        let counts = filesystem.readCounts
        return MountStatus(source: "s3://\(options.bucket)/\(options.prefix)", mountpoint: options.mountpoint, pid: getpid(),
                           uptimeSeconds: uptime, engine: engine.snapshot(), pendingBlocks: filler.pendingBlocks,
                           hits: counts.hits, misses: counts.misses,
                           cachedBytes: (try? cache.usage().cachedBytes) ?? 0)
    }

    private func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
        threads.enter()
        let t = Thread { [threads] in
            body()
            threads.leave()
        }
        t.name = name
        t.start()
    }

    /// `soak prewarm` handed over by a client: runs on this mount's engine (bulk lane, so reads
    /// from the mount still go first), streams progress, stops if the client goes away.
    private func prewarmForClient(_ req: ControlRequest, send: (ControlReply) -> Bool) {
        let shard: Shard
        do { shard = try req.shard.map { try Shard(parsing: $0) } ?? .all } catch {
            _ = send(ControlReply(error: "\(error)")); return
        }
        let p = PrewarmOptions(bucket: req.bucket ?? options.bucket, prefix: req.prefix ?? options.prefix,
                               endpoint: options.endpoint, filter: KeyFilter(req.rules ?? []), shard: shard)
        let store: ObjectStore
        do { store = try service.stores.dedicated() } catch { _ = send(ControlReply(error: "\(error)")); return }
        var gone = false
        var last = 0.0
        do {
            let summary = try prewarmer(p, store: store).run(tick: { progress in
                let now = MonotonicTime.now()
                guard now - last >= Self.progressInterval else { return }
                last = now
                if !send(ControlReply(progress: progress)) { gone = true }
            }, shouldStop: { gone })
            _ = send(ControlReply(summary: summary))
        } catch {
            _ = send(ControlReply(error: "\(error)"))
        }
    }

    /// `--prefetch`: a prewarm of the mount's prefix and filters on its engine, in the bulk lane.
    private func prefetch() {
        let p = PrewarmOptions(bucket: options.bucket, prefix: options.prefix, endpoint: options.endpoint,
                               filter: options.filter)
        do {
            let summary = try prewarmer(p, store: try service.stores.dedicated())
                .run(shouldStop: { stopPrefetch.load(ordering: .relaxed) })
            logger.info("prefetch done: \(summary.selected) objects selected, \(summary.bytesFetched) bytes fetched, \(summary.failures.count) failed")
        } catch {
            logger.error("prefetch failed: \(error)")
        }
    }

    /// A prewarm that runs on this session's engine and fill scheduler.
    private func prewarmer(_ options: PrewarmOptions, store: ObjectStore) -> Prewarmer {
        Prewarmer(options: options, store: store, cache: cache, builder: service.builder, settings: service.settings,
                  workerExecutable: service.workerExecutable, logger: logger, shared: (engine, filler))
    }
}
