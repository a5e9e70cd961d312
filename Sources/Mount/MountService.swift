/// `soak mount`: `start` lists the prefix into the cache's catalog (whole if it is small, else
/// lazily per directory), builds the namespace, starts the engine and the fill scheduler and
/// returns them as a `MountSession`; `run` mounts that session's file system with libfuse,
/// serves until unmounted or signalled, then stops the session. Everything but the FUSE session
/// runs in unit tests (`start` over an in-memory store and transport).
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

public final class MountService: Sendable {
    /// 10 pages of ListObjectsV2: under a second to list and record, so small prefixes mount
    /// with the whole tree known while large ones still mount at once.
    public static let defaultEagerListingKeys = 10_000
    /// Bulk (prefetch) orders out at once while mounted: few enough that a read that misses is
    /// not queued by the server behind prefetch streams, at a small cost in prefetch throughput
    /// (docs/BENCHMARKS.md, mount reads under a prefetch).
    public static let bulkOrdersWhileMounted = 4
    let options: MountOptions
    let stores: ObjectStorePool
    /// The coordinator's own S3 requests (listings, HEADs), for the metrics.
    let requestCounts: RequestCounts
    let cache: DiskCache
    let builder: S3RequestBuilder
    let settings: EngineSettings
    let workerExecutable: String
    let logger: Logger
    /// Refreshed credentials for the workers; nil keeps the builder's.
    let credentials: CredentialKeeper?
    /// Builds the engine's transport; nil: the worker pool (`workerExecutable`).
    private let transportFactory: (@Sendable () -> FetchTransport)?

    /// `transport` builds what runs the fetches (tests: a `StoreTransport`); by default a pool of
    /// worker processes.
    public init(options: MountOptions, makeStore: @escaping @Sendable () throws -> ObjectStore, cache: DiskCache,
                builder: S3RequestBuilder, settings: EngineSettings, workerExecutable: String, logger: Logger,
                credentials: CredentialKeeper? = nil, transport: (@Sendable () -> FetchTransport)? = nil) {
        self.options = options
        self.transportFactory = transport
        let counts = RequestCounts()
        self.requestCounts = counts
        self.stores = ObjectStorePool(make: { CountingObjectStore(base: try makeStore(), counts: counts) })
        self.cache = cache; self.builder = builder; self.settings = settings
        self.workerExecutable = workerExecutable; self.logger = logger; self.credentials = credentials
    }

    /// Runs until unmounted or signalled. `ready` is called once the mount is in place, right
    /// before its loop starts serving requests; `stopping` once that loop has ended.
    public func run(ready: () -> Void, stopping: () -> Void = {}) throws {
        try checkCacheDirectoryFree()
        try Self.prepareMountpoint(options.mountpoint, logger: logger)
        let session = try start()
        var mountOptions = ["ro", "default_permissions", "fsname=soak:\(options.bucket)/\(options.prefix)", "subtype=soak"]
        if options.allowOther { mountOptions.append("allow_other") }
        let fuse: FuseSession
        do {
            fuse = try FuseSession(handler: session.filesystem,
                                   options: mountOptions.map { $0.replacingOccurrences(of: ",", with: "_") })
            try fuse.mount(at: options.mountpoint)
        } catch {
            session.stop()
            throw error
        }
        Self.raiseKernelReadAhead(options.mountpoint, kib: Int(FuseSession.maxReadahead >> 10), logger: logger)
        session.serve()
        logger.info("mounted s3://\(options.bucket)/\(options.prefix) at \(options.mountpoint)")
        ready()
        // The stop signals go to this thread only (every other thread was started with them
        // blocked, see `setStopSignals`): libfuse's handler must interrupt the loop's own
        // wait, or the loop would only notice the request to stop at the next FUSE request.
        Self.setStopSignals(blocked: false)
        let rc = fuse.run(threads: options.threads)
        stopping()
        logger.info("unmounting \(options.mountpoint) (loop ended with \(rc))")
        session.stopServing()
        fuse.close()
        session.stop()
    }

    /// A cache directory serves one mount: another mount answering on its control socket is refused.
    func checkCacheDirectoryFree() throws {
        if let fd = ControlSocket.connect(cacheDir: cache.directory) {
            close(fd)
            throw MountError("cache directory \(cache.directory) belongs to a running mount; use another --cache-dir")
        }
    }

    /// Everything a mount runs but the FUSE session: binds the metrics listener (a taken port
    /// fails before any listing), lists the prefix into the cache's catalog (whole if small,
    /// else its root, so a bad bucket or credentials fail here and not at the first `ls`),
    /// builds the namespace, starts the engine over the transport and the fill scheduler, and
    /// makes the file system. On failure, what it started is stopped.
    public func start() throws -> MountSession {
        let metrics = options.metricsAddress.map { _ in MountMetrics() }
        // The metrics listener exists before what it reports on; it reads the session once there is one.
        let running = LateSession()
        let metricsServer = try options.metricsAddress.map { address in
            try MetricsServer(address: address) { [cache, requestCounts] in
                guard let metrics else { return [] }
                if let session = running.session {
                    let counts = session.filesystem.readCounts
                    let usage = (try? cache.usage())
                        ?? CacheUsage(cachedBytes: 0, evictedBytes: 0, capBytes: cache.effectiveCap(cachedBytes: 0))
                    metrics.update(engine: session.engine.snapshot(), hits: counts.hits, misses: counts.misses,
                                   cached: usage.cachedBytes, evicted: usage.evictedBytes, capacity: usage.capBytes,
                                   requestCounts: requestCounts.snapshot)
                }
                return metrics.render()
            }
        }
        do {
            let session = try start(metricsServer: metricsServer, metrics: metrics)
            running.session = session
            metricsServer?.start()
            return session
        } catch {
            metricsServer?.stop()
            throw error
        }
    }

    private func start(metricsServer: MetricsServer?, metrics: MountMetrics?) throws -> MountSession {
        let bucketID = try cache.bucketID(endpoint: options.endpoint, name: options.bucket)
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
        do { try engine.start(reportingTo: filler) } catch {
            engine.stop(); filler.stop()
            throw error
        }
        let fs = MountFilesystem(namespace: ns, cache: cache, filler: filler, remote: remote, bucket: options.bucket, uid: options.uid,
                                 gid: options.gid, ttl: options.metadataTTL, readAheadBlocks: options.readAheadMiB,
                                 logger: logger)
        if let metrics { fs.readObserver = { metrics.recordRead(seconds: $0, hit: $1, bytes: $2) } }
        return MountSession(service: self, bucketID: bucketID, namespace: ns, filesystem: fs, engine: engine,
                            filler: filler, metricsServer: metricsServer)
    }

    /// Lists the whole prefix into the catalog if it has at most `eagerListingKeys` keys and
    /// returns its rows; nil (after recording what it saw) when it has more.
    private func listWhole(bucketID: Int64) throws -> [CachedObject]? {
        let stamp = Int64(Date().timeIntervalSince1970 * 1000)
        var rows: [CachedObject] = []
        let limit = options.eagerListingKeys
        let complete = try stores.with { store in
            try ListingPager.run(store: store, bucket: options.bucket, prefix: options.prefix, retry: settings.retry,
                                 logger: logger, shouldStop: { rows.count > limit }) { page in
                rows += try cache.recordListing(bucketID: bucketID, objects: page.objects, stamp: stamp)
            }
        }
        guard complete, rows.count <= limit else { return nil }
        try cache.finishListing(bucketID: bucketID, prefix: options.prefix, stamp: stamp)
        return rows
    }

    /// The session `start` is making, for the metrics listener made before it.
    private final class LateSession: Sendable {
        private let value = Mutex<MountSession?>(nil)
        var session: MountSession? {
            get { value.withLock { $0 } }
            set { value.withLock { $0 = newValue } }
        }
    }
}
