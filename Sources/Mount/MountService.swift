/// `soak mount`: list the prefix into the cache index (whole if it is small, else lazily per
/// directory), build the namespace, start the engine and the fill scheduler, mount, serve until
/// unmounted or signalled, then stop cleanly.
import Cache
import Engine
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

public struct MountOptions: Sendable {
    public var bucket: String
    public var prefix: String
    public var endpoint: String
    public var mountpoint: String
    public var filter: KeyFilter
    public var allowOther = false
    public var uid: UInt32 = getuid()
    public var gid: UInt32 = getgid()
    public var metadataTTL = 60.0
    /// Warm every selected object in the bulk lane while mounted.
    public var prefetch = false
    /// Check complete single-part objects against their ETag's MD5 (see `CacheFiller`).
    public var verifyMD5 = true
    /// FUSE threads serving requests.
    public var threads: UInt32 = 16
    /// MiB fetched ahead of a sequential reader (1 MiB blocks).
    public var readAheadMiB = 64
    /// HOST:PORT to serve Prometheus metrics on (nil: none).
    public var metricsAddress: String?
    /// A prefix with at most this many keys is listed whole at mount time (`ls -lR` and `find`
    /// then need no request); a larger one is listed per directory as it is used.
    public var eagerListingKeys = MountService.defaultEagerListingKeys
    public init(bucket: String, prefix: String, endpoint: String, mountpoint: String, filter: KeyFilter) {
        self.bucket = bucket; self.prefix = prefix; self.endpoint = endpoint; self.mountpoint = mountpoint
        self.filter = filter
    }
}

public final class MountService: @unchecked Sendable {
    /// 10 pages of ListObjectsV2: under a second to list and record, so small prefixes mount
    /// with the whole tree known while large ones still mount at once.
    public static let defaultEagerListingKeys = 10_000
    /// Bulk (prefetch) orders out at once while mounted. Measured with `scripts/bench-mount ttfb
    /// soak` under a `soak prewarm` of d/: 16 concurrent bulk transfers gave a read-miss p99 of
    /// 150–250 ms (the server's own 4 KiB TTFB under that load reached 150 ms), 8 gave 73 ms,
    /// 4 gave 53 ms against 38 ms idle, for 8–10% less prewarm throughput.
    public static let bulkOrdersWhileMounted = 4
    private let options: MountOptions
    private let stores: ObjectStorePool
    /// The coordinator's own S3 requests (listings, HEADs), for the metrics.
    private let requestCounts: RequestCounts
    private let cache: DiskCache
    private let builder: S3RequestBuilder
    private let settings: EngineSettings
    private let workerExecutable: String
    private let logger: Logger
    /// Refreshed credentials for the workers (set before `run`); nil keeps the builder's.
    public var credentials: CredentialKeeper?

    /// Builds the engine's transport; nil: the worker pool (`workerExecutable`).
    private let transportFactory: (@Sendable () -> FetchTransport)?

    /// `transport` builds what runs the fetches (tests: a `StoreTransport`); by default a pool of
    /// worker processes.
    public init(options: MountOptions, makeStore: @escaping @Sendable () throws -> ObjectStore, cache: DiskCache,
                builder: S3RequestBuilder, settings: EngineSettings, workerExecutable: String, logger: Logger,
                transport: (@Sendable () -> FetchTransport)? = nil) {
        self.options = options
        self.transportFactory = transport
        let counts = RequestCounts()
        self.requestCounts = counts
        self.stores = ObjectStorePool(make: { CountingObjectStore(base: try makeStore(), counts: counts) }); self.cache = cache; self.builder = builder
        self.settings = settings; self.workerExecutable = workerExecutable; self.logger = logger
    }

    /// Checks the mountpoint: an existing, empty directory. A dead FUSE mount left by a kill -9
    /// ("transport endpoint is not connected") is detached first. A live FUSE mount there (soak
    /// or another) is refused; an empty directory that is the mount point of another file system
    /// is mounted over, because that is how containers get their mountpoint: a bind-mounted
    /// volume (Docker's `-v host:/mnt/soak:rshared`, a Kubernetes hostPath).
    public static func prepareMountpoint(_ path: String, logger: Logger) throws {
        if isMountpoint(path) {
            // A live mount answers; a dead FUSE connection fails with ENOTCONN (its cached
            // attributes may still make stat() succeed, so open the directory).
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 {
                close(fd)
                let type = topFileSystemType(path) ?? "fuse"
                if type == "fuse" || type == "fuseblk" || type.hasPrefix("fuse.") {
                    throw MountError("\(path) is already a mount point (\(type))")
                }
                logger.debug("\(path) is the mount point of a \(type) file system (a bind-mounted volume?); mounting over it")
            } else {
                try detachStale(path, logger: logger)
            }
        }
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw MountError(errno == ENOENT ? "mountpoint \(path) does not exist"
                                             : "mountpoint \(path): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw MountError("mountpoint \(path) is not a directory") }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        guard entries.isEmpty else { throw MountError("mountpoint \(path) is not empty") }
    }

    /// Detaches the dead FUSE mount at `path` (its open failed; only ENOTCONN/ECONNABORTED mean dead).
    private static func detachStale(_ path: String, logger: Logger) throws {
        guard errno == ENOTCONN || errno == ECONNABORTED else {
            throw MountError("\(path) is a mount point that cannot be opened: \(String(cString: strerror(errno)))")
        }
        logger.warning("\(path) is a stale FUSE mount (its server died); unmounting it")
        guard umount2(path, Int32(MNT_DETACH)) == 0 else {
            throw MountError("\(path) is a stale FUSE mount and could not be unmounted: \(String(cString: strerror(errno)))")
        }
    }

    /// The type of the file system mounted last (the one seen) at `path`, from /proc/self/mountinfo:
    /// the first field after the " - " separator; the mount point is field 5, octal-escaped.
    static func topFileSystemType(_ path: String) -> String? {
        guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        let escaped = path.replacingOccurrences(of: "\\", with: "\\134").replacingOccurrences(of: " ", with: "\\040")
            .replacingOccurrences(of: "\t", with: "\\011").replacingOccurrences(of: "\n", with: "\\012")
        let line = info.split(separator: "\n").last { line in
            line.split(separator: " ", omittingEmptySubsequences: false).dropFirst(4).first.map(String.init) == escaped
        }
        guard let line, let sep = line.range(of: " - ") else { return nil }
        return line[sep.upperBound...].split(separator: " ").first.map(String.init)
    }

    /// The kernel reads ahead 128 KiB on a FUSE mount by default, so a sequential reader's
    /// requests arrive as 256 KiB reads; at `kib` (1 MiB) they arrive as one block each
    /// (measured with `--log-level trace` while cat-ing a 10 MiB file: 40 reads of 256 KiB
    /// before, 10 of 1 MiB after). Needs root; without it the default stays.
    static func raiseKernelReadAhead(_ mountpoint: String, kib: Int, logger: Logger) {
        // Not stat(): the mount does not answer until its loop runs. mountinfo field 3 is MAJ:MIN.
        guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
              let line = info.split(separator: "\n").last(where: {
                  $0.split(separator: " ").dropFirst(4).first.map(String.init) == mountpoint }),
              let dev = line.split(separator: " ").dropFirst(2).first else { return }
        let path = "/sys/class/bdi/\(dev)/read_ahead_kb"
        do {
            try "\(kib)\n".write(toFile: path, atomically: false, encoding: .utf8)
        } catch {
            logger.debug("could not raise the kernel read-ahead (\(path)): \(error)")
        }
    }

    /// Blocks (or unblocks) SIGINT, SIGTERM and SIGHUP for the calling thread; threads it starts
    /// afterwards inherit the mask. `soak mount` blocks them first thing, before any thread exists.
    public static func setStopSignals(blocked: Bool) {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, sig) }
        pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, nil)
    }

    /// Whether `path` is the mount point of some file system (from /proc/self/mountinfo).
    static func isMountpoint(_ path: String) -> Bool {
        guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        // Field 5 is the mount point, with spaces and friends octal-escaped.
        let escaped = path.replacingOccurrences(of: "\\", with: "\\134").replacingOccurrences(of: " ", with: "\\040")
            .replacingOccurrences(of: "\t", with: "\\011").replacingOccurrences(of: "\n", with: "\\012")
        return info.split(separator: "\n").contains { line in
            line.split(separator: " ", omittingEmptySubsequences: false).dropFirst(4).first.map(String.init) == escaped
        }
    }

    /// Runs until unmounted or signalled. `ready` is called once the mount is in place, right
    /// before its loop starts serving requests; `stopping` once that loop has ended.
    public func run(ready: () -> Void, stopping: () -> Void = {}) throws {
        if let fd = ControlSocket.connect(cacheDir: cache.directory) {
            close(fd)
            throw MountError("cache directory \(cache.directory) belongs to a running mount; use another --cache-dir")
        }
        try Self.prepareMountpoint(options.mountpoint, logger: logger)
        let metrics = options.metricsAddress.map { _ in MountMetrics() }
        final class FSBox: @unchecked Sendable { var fs: MountFilesystem?; var engine: FetchEngine? }
        let fsBox = FSBox()
        let metricsServer = try options.metricsAddress.map { address in
            try MetricsServer(address: address) { [cache, requestCounts] in
                guard let metrics else { return [] }
                if let fs = fsBox.fs, let engine = fsBox.engine {
                    let counts = fs.readCounts
                    metrics.update(engine: engine.snapshot(), hits: counts.hits, misses: counts.misses,
                                   cached: (try? cache.index.counter("bytes")) ?? 0,
                                   evicted: (try? cache.index.counter("evicted")) ?? 0,
                                   capacity: cache.effectiveCap(cachedBytes: (try? cache.index.counter("bytes")) ?? 0),
                                   requestCounts: requestCounts.snapshot)
                }
                return metrics.render()
            }
        }
        let bucketID = try cache.index.bucketID(endpoint: options.endpoint, name: options.bucket)
        let remote = S3MountRemote(stores: stores, cache: cache, bucket: options.bucket, bucketID: bucketID,
                                   retry: settings.retry, logger: logger)
        let ns = Namespace(prefix: options.prefix, ttl: options.metadataTTL, filter: options.filter, remote: remote,
                           logger: logger)
        if let objects = try listWhole(bucketID: bucketID) {
            ns.populate(objects: objects)
            let t = ns.totals
            logger.info("listed \(objects.count) keys: \(t.files) files, \(t.inodes) inodes, \(ns.hidden.count) keys not shown")
        } else {
            // Large: list the root now (a bad bucket or credentials fail here, not at first ls).
            _ = try ns.contents(Namespace.rootIno)
            logger.info("over \(options.eagerListingKeys) keys: directories are listed as they are used")
        }

        var settings = settings
        if settings.maxBulkOrders == nil { settings.maxBulkOrders = Self.bulkOrdersWhileMounted }
        let transport = transportFactory?() ?? WorkerPoolTransport(settings: settings, workerExecutable: workerExecutable,
                                                                   builder: builder, logger: logger)
        let engine = FetchEngine(settings: settings, transport: transport, logger: logger)
        if let credentials { engine.follow(credentials) }
        let filler = CacheFiller(cache: cache, submitter: engine, logger: logger, verifyMD5: options.verifyMD5,
                                 backgroundVerify: true)
        if let metrics { engine.onFetchLatency = { metrics.recordFetch(firstByte: $0, lane: $1) } }
        try engine.start(reportingTo: filler)
        let fs = MountFilesystem(namespace: ns, cache: cache, filler: filler, remote: remote, bucket: options.bucket, uid: options.uid,
                                 gid: options.gid, ttl: options.metadataTTL, readAheadBlocks: options.readAheadMiB,
                                 logger: logger)
        if let metrics { fs.readObserver = { metrics.recordRead(seconds: $0, hit: $1, bytes: $2) } }
        fsBox.fs = fs
        fsBox.engine = engine
        metricsServer?.start()
        defer { metricsServer?.stop() }
        var mountOptions = ["ro", "default_permissions", "fsname=soak:\(options.bucket)/\(options.prefix)", "subtype=soak"]
        if options.allowOther { mountOptions.append("allow_other") }
        let session: FuseSession
        do {
            session = try FuseSession(handler: fs, options: mountOptions.map { $0.replacingOccurrences(of: ",", with: "_") })
            try session.mount(at: options.mountpoint)
        } catch {
            engine.stop(); filler.stop()
            throw error
        }
        Self.raiseKernelReadAhead(options.mountpoint, kib: Int(FuseSession.maxReadahead >> 10), logger: logger)
        final class Stop: @unchecked Sendable { var value = false }
        let stopPrefetch = Stop()
        let prefetcher = options.prefetch ? Thread { [self] in
            prefetch(engine: engine, filler: filler) { stopPrefetch.value }
        } : nil
        prefetcher?.start()
        let started = MonotonicTime.now()
        let control = ControlServer(cacheDir: cache.directory) { [self] req, send in
            switch req.op {
            case .status:
                let counts = fs.readCounts
                _ = send(ControlReply(status: MountStatus(
                    source: "s3://\(options.bucket)/\(options.prefix)", mountpoint: options.mountpoint, pid: getpid(),
                    uptimeSeconds: MonotonicTime.now() - started, engine: engine.snapshot(), pendingBlocks: filler.pendingBlocks,
                    hits: counts.hits, misses: counts.misses, cachedBytes: (try? cache.index.counter("bytes")) ?? 0)))
            case .prewarm:
                prewarmForClient(req, engine: engine, filler: filler, send: send)
            }
        }
        do { try control.start() } catch { logger.warning("no control socket: \(error)") }
        // Hit/miss counters reach the index every few seconds.
        let flusher = Thread { while !Thread.current.isCancelled { sleep(5); fs.flushCounters() } }
        flusher.start()
        logger.info("mounted s3://\(options.bucket)/\(options.prefix) at \(options.mountpoint)")
        ready()
        // The stop signals go to this thread only (every other thread was started with them
        // blocked, see `blockStopSignals`): libfuse's handler must interrupt the loop's own
        // wait, or the loop would only notice the request to stop at the next FUSE request.
        Self.setStopSignals(blocked: false)
        let rc = session.run(threads: options.threads)
        stopping()
        logger.info("unmounting \(options.mountpoint) (loop ended with \(rc))")
        control.stop()
        stopPrefetch.value = true
        session.close()
        flusher.cancel()
        engine.stop()
        filler.stop()
        fs.flushCounters()
        try? cache.index.checkpoint()
    }

    /// `soak prewarm` handed over by a client: runs on this mount's engine (bulk lane, so reads
    /// from the mount still go first), streams progress, stops if the client goes away.
    private func prewarmForClient(_ req: ControlRequest, engine: FetchEngine, filler: CacheFiller,
                                  send: (ControlReply) -> Bool) {
        let shard: Shard
        do { shard = try req.shard.map { try Shard(parsing: $0) } ?? .all } catch {
            _ = send(ControlReply(error: "\(error)")); return
        }
        let p = PrewarmOptions(bucket: req.bucket ?? options.bucket, prefix: req.prefix ?? options.prefix,
                               endpoint: options.endpoint, filter: KeyFilter(req.rules ?? []), shard: shard)
        let store: ObjectStore
        do { store = try stores.dedicated() } catch { _ = send(ControlReply(error: "\(error)")); return }
        let prewarmer = Prewarmer(options: p, store: store, cache: cache, builder: builder, settings: settings,
                                  workerExecutable: workerExecutable, logger: logger, shared: (engine, filler))
        final class Gone: @unchecked Sendable { var value = false }
        let gone = Gone()
        var last = 0.0
        do {
            let summary = try prewarmer.run(tick: { progress in
                let now = MonotonicTime.now()
                guard now - last >= 0.25 else { return }
                last = now
                if !send(ControlReply(progress: progress)) { gone.value = true }
            }, shouldStop: { gone.value })
            _ = send(ControlReply(summary: summary))
        } catch {
            _ = send(ControlReply(error: "\(error)"))
        }
    }

    /// `--prefetch`: a prewarm of the mount's prefix and filters on its engine, in the bulk lane.
    private func prefetch(engine: FetchEngine, filler: CacheFiller, shouldStop: @escaping () -> Bool) {
        let p = PrewarmOptions(bucket: options.bucket, prefix: options.prefix, endpoint: options.endpoint,
                               filter: options.filter)
        do {
            let prewarmer = Prewarmer(options: p, store: try stores.dedicated(), cache: cache, builder: builder,
                                      settings: settings, workerExecutable: workerExecutable, logger: logger,
                                      shared: (engine, filler))
            let summary = try prewarmer.run(shouldStop: shouldStop)
            logger.info("prefetch done: \(summary.selected) objects selected, \(summary.bytesFetched) bytes fetched, \(summary.failures.count) failed")
        } catch {
            logger.error("prefetch failed: \(error)")
        }
    }

    /// Lists the whole prefix into the index if it has at most `eagerListingKeys` keys and
    /// returns its rows; nil (after recording what it saw) when it has more.
    private func listWhole(bucketID: Int64) throws -> [CachedObject]? {
        let stamp = Int64(Date().timeIntervalSince1970 * 1000)
        var rows: [CachedObject] = []
        let limit = options.eagerListingKeys
        let complete = try stores.with { store in
            try ListingPager.run(store: store, bucket: options.bucket, prefix: options.prefix, retry: settings.retry,
                                 logger: logger, shouldStop: { rows.count > limit }) { page in
                let r = try cache.index.recordListing(bucketID: bucketID, objects: page.objects, stamp: stamp)
                cache.discard(r.dropped)
                rows += r.objects
            }
        }
        guard complete, rows.count <= limit else { return nil }
        cache.discard(try cache.index.finishListing(bucketID: bucketID, prefix: options.prefix, stamp: stamp))
        return rows
    }
}
