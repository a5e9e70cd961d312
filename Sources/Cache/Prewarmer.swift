/// `soak prewarm`: list a prefix into the cache index, then fill every missing block of the
/// selected objects.
///
/// Data flow: the worker pool starts, then `ObjectStore.listPage` page by page → the whole page
/// is recorded in the index (the mount serves `ls`/`stat` from it; a changed ETag replaces the
/// row and drops the old data) → filter (`KeyFilter`) and shard (`Shard`) select objects →
/// complete ones are skipped → the rest go to `CacheFiller` in the bulk lane, which fetches each
/// missing block once and records it durably. After a complete listing, objects under the
/// prefix that the listing no longer shows are removed from the index with their data.
import Engine
import Foundation
import Logging
import S3
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct PrewarmOptions: Sendable {
    public var bucket: String
    public var prefix: String
    /// Identifies the S3 service in the index (objects of equal bucket names elsewhere differ).
    public var endpoint: String
    public var filter: KeyFilter
    public var shard: Shard
    /// Check single-part objects against their ETag's MD5 (see `CacheFiller`).
    public var verifyMD5 = true
    public init(bucket: String, prefix: String, endpoint: String, filter: KeyFilter, shard: Shard = .all) {
        self.bucket = bucket; self.prefix = prefix; self.endpoint = endpoint; self.filter = filter; self.shard = shard
    }
}

/// `--shard I/N`: a deterministic share of the objects, by a stable hash of the key, so N nodes
/// warm disjoint sets that together cover everything, with no coordination.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public var index: Int
    public var count: Int
    public static let all = Shard(index: 0, count: 1)
    public init(index: Int, count: Int) { self.index = index; self.count = count }

    public init(parsing s: String) throws(UsageError) {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, n <= 1_000_000, i >= 0, i < n else {
            throw UsageError("invalid --shard '\(s)': expected I/N with 0 <= I < N, e.g. 0/4")
        }
        index = i; count = n
    }

    /// FNV-1a 64 of the key bytes: stable across runs, machines and versions.
    public func contains(key: String) -> Bool {
        guard count > 1 else { return true }
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return Int(h % UInt64(count)) == index
    }

    public var description: String { "\(index)/\(count)" }
}

public struct PrewarmSummary: Sendable, Codable {
    public var listed = 0
    public var selected = 0
    /// Selected objects that were complete before this run.
    public var alreadyCached = 0
    public var filled = 0
    public var bytesTotal: Int64 = 0
    public var bytesFetched: Int64 = 0
    public var seconds = 0.0
    public var failures: [DownloadFailure] = []
    public var interrupted = false
    /// Objects the listing no longer shows, removed from the index.
    public var removed = 0
    /// Objects evicted before they were complete: the selection is larger than the cache cap.
    public var didNotFit = 0
}

public final class Prewarmer: Sendable {
    private let options: PrewarmOptions
    private let store: ObjectStore
    private let cache: DiskCache
    private let settings: EngineSettings
    private let workerExecutable: String
    private let builder: S3RequestBuilder
    private let logger: Logger
    private let cond = NSCondition()
    /// The run's counts and handles (fill callbacks arrive on the committer thread).
    private struct State {
        var open = 0
        var summary = PrewarmSummary()
        var bytesAlreadyDone: Int64 = 0
        var objectsDone = 0
        var engine: FetchEngine?
        var credentials: CredentialKeeper?
        var engineBytesAtStart: Int64 = 0
        /// This run's bucket row, listing stamp and filler, for recording and filling a version
        /// that replaced a listed one (set in `run`).
        var bucketID: Int64 = 0
        var stamp: Int64 = 0
        var filler: CacheFiller?
        /// Times each key's version changed during this run.
        var versionChanges: [String: Int] = [:]
    }
    private let state = Mutex(State())

    /// Refreshed credentials for the workers of its own engine (set before `run`).
    public var credentials: CredentialKeeper? {
        get { state.withLock { $0.credentials } }
        set { state.withLock { $0.credentials = newValue } }
    }

    /// An engine and filler already running (a mount's): used instead of starting new ones, so
    /// one cache directory has one scheduler and one worker pool.
    private let shared: (engine: FetchEngine, filler: CacheFiller)?

    public init(options: PrewarmOptions, store: ObjectStore, cache: DiskCache, builder: S3RequestBuilder,
                settings: EngineSettings, workerExecutable: String, logger: Logger,
                shared: (engine: FetchEngine, filler: CacheFiller)? = nil,
                transport: (@Sendable () -> FetchTransport)? = nil) {
        self.options = options; self.store = store; self.cache = cache; self.builder = builder
        self.settings = settings; self.workerExecutable = workerExecutable; self.logger = logger
        self.shared = shared
        self.transportFactory = transport
    }

    /// Builds its own engine's transport; nil: the worker pool (`workerExecutable`).
    private let transportFactory: (@Sendable () -> FetchTransport)?

    func makeEngine() -> FetchEngine {
        let transport = transportFactory?() ?? WorkerPoolTransport(settings: settings, workerExecutable: workerExecutable,
                                                                   builder: builder, logger: logger)
        return FetchEngine(settings: settings, transport: transport, logger: logger)
    }

    public func run(tickInterval: Double = 0.2, tick: (DownloadProgress) -> Void = { _ in },
                    shouldStop: () -> Bool = { false }) throws -> PrewarmSummary {
        let t0 = MonotonicTime.now()
        let bucketID = try cache.index.bucketID(endpoint: options.endpoint, name: options.bucket)
        let stamp = Int64(Date().timeIntervalSince1970 * 1000)
        let engine: FetchEngine, filler: CacheFiller
        var engineBytesAtStart: Int64 = 0
        if let shared {
            (engine, filler) = shared
            engineBytesAtStart = engine.snapshot().bytes
        } else {
            engine = makeEngine()
            filler = CacheFiller(cache: cache, submitter: engine, logger: logger, verifyMD5: options.verifyMD5)
            engine.versionCheck = VersionChecker(store: store, retry: settings.retry, logger: logger)
            if let credentials { engine.follow(credentials) }
            // No reader waits on a prewarm's blocks: noting them before their job is done buys nothing.
            try engine.start(reportingTo: filler, landings: false)
        }
        state.withLock { s in
            s.bucketID = bucketID; s.stamp = stamp; s.engineBytesAtStart = engineBytesAtStart
            s.engine = engine; s.filler = filler
        }
        let owned = shared == nil
        defer { if owned { engine.stop(); filler.stop() } }

        var interrupted = false
        do {
            let complete = try ListingPager.run(store: store, bucket: options.bucket, prefix: options.prefix,
                                                retry: settings.retry, logger: logger, shouldStop: shouldStop) { page in
                let (rows, dropped) = try cache.index.recordListing(bucketID: bucketID, objects: page.objects, stamp: stamp)
                cache.discard(dropped)
                state.withLock { $0.summary.listed += rows.count }
                for o in rows where selects(o) { start(o, filler: filler) }
                tick(progress())
            }
            interrupted = !complete
            if !interrupted {
                let gone = try cache.index.finishListing(bucketID: bucketID, prefix: options.prefix, stamp: stamp)
                cache.discard(gone)
                state.withLock { $0.summary.removed = gone.count }
            }
        }

        while !interrupted {
            // `open` is read under `cond`, which `finished` takes to announce the last answer, so
            // that announcement cannot fall between the read and the wait (it did: the run then
            // ended up to a tick late).
            cond.lock()
            let remaining = state.withLock { $0.open }
            if remaining == 0 { cond.unlock(); break }
            if shouldStop() { cond.unlock(); interrupted = true; break }
            _ = cond.wait(until: Date(timeIntervalSinceNow: tickInterval))
            cond.unlock()
            tick(progress())
        }
        if owned {
            engine.stop()
            filler.stop()
            try? cache.index.checkpoint()  // fold the WAL back: the index is smallest at rest
        }
        tick(progress())
        let bytes = engine.snapshot().bytes
        return state.withLock { s in
            s.summary.interrupted = interrupted
            s.summary.bytesFetched = bytes - engineBytesAtStart
            s.summary.seconds = MonotonicTime.now() - t0
            if interrupted && s.open > 0 {
                s.summary.failures.append(DownloadFailure(key: "(\(s.open) objects)", reason: "interrupted; rerun to finish (landed blocks are kept)"))
            }
            return s.summary
        }
    }

    private func selects(_ o: CachedObject) -> Bool {
        guard let rel = KeyFilter.relativeKey(o.key, prefix: options.prefix), options.filter.includes(rel) else { return false }
        if o.key.hasSuffix("/") && o.size == 0 { return false }  // directory marker
        return options.shard.contains(key: o.key)
    }

    private func start(_ o: CachedObject, filler: CacheFiller) {
        let done = state.withLock { s in
            s.summary.selected += 1
            s.summary.bytesTotal += o.size
            if o.isComplete {
                s.summary.alreadyCached += 1
                s.bytesAlreadyDone += o.size
                s.objectsDone += 1
                return true
            }
            s.bytesAlreadyDone += o.cachedBytes
            s.open += 1
            return false
        }
        if done { return }
        filler.fill(o, bucket: options.bucket, lane: .bulk) { [weak self] o, err in self?.finished(o, err) }
    }

    private func finished(_ o: CachedObject, _ err: FillError?) {
        switch err {
        case .replaced?, .deleted?:
            // Every order of the request is in. One of the old version's that was under way
            // when the first 412 dropped its data file may have made it again (workers create
            // the file before the answer comes): that generation is never used again.
            unlink(cache.dataPath(o))
        default:
            break
        }
        if case .replaced(_, let now) = err, refill(o, now) { return }
        state.withLock { s in
            if case .evicted = err, (try? cache.index.object(id: o.id)) != nil {
                s.summary.didNotFit += 1  // still listed, but its data was evicted: the cap is too small
            } else if case .fetch(let e) = err, e.kind == .http, e.status == 404 {
                let how = "GET answered 404" + (e.code.map { " " + $0 } ?? "")
                s.summary.failures.append(DownloadFailure(key: o.key, reason: VersionAnswer.deleted(how)))
            } else if let err {
                s.summary.failures.append(DownloadFailure(key: o.key, reason: err.description))
            } else {
                s.summary.filled += 1
                s.objectsDone += 1
            }
        }
        finishedOne()
    }

    /// A 412 and HEAD showed a new version of `o` (its blocks are dropped): records it as a
    /// listing would (a new row, a new data file) and fills it in place of `o`. False when the
    /// key changed too often, or the new version could not be recorded (`o` then fails).
    private func refill(_ o: CachedObject, _ now: ObjectInfo) -> Bool {
        let (n, filler, bucketID, stamp) = state.withLock { s in
            let n = s.versionChanges[o.key, default: 0] + 1
            s.versionChanges[o.key] = n
            return (n, s.filler, s.bucketID, s.stamp)
        }
        guard case .refetch? = VersionAnswer.changed(now).step(changesSoFar: n - 1, listedETag: o.etag), let filler else {
            state.withLock { $0.summary.failures.append(DownloadFailure(key: o.key, reason: VersionAnswer.tooManyChanges(n))) }
            finishedOne()
            return true
        }
        let row: CachedObject
        do {
            let r = try cache.index.recordListing(bucketID: bucketID, objects: [now], stamp: stamp)
            cache.discard(r.dropped)
            guard let first = r.objects.first else { return false }
            row = first
        } catch {
            logger.warning("could not record the new version of \(PathError.printable(o.key)): \(error)")
            return false
        }
        state.withLock { s in
            s.summary.bytesTotal += row.size - o.size
            s.bytesAlreadyDone -= o.cachedBytes
        }
        filler.fill(row, bucket: options.bucket, lane: .bulk) { [weak self] o, err in self?.finished(o, err) }
        return true
    }

    /// One selected object is done with (`state` not held).
    private func finishedOne() {
        let last = state.withLock { s in
            s.open -= 1
            return s.open == 0
        }
        if last { cond.lock(); cond.broadcast(); cond.unlock() }
    }

    public func progress() -> DownloadProgress {
        let e = state.withLock { $0.engine }?.snapshot() ?? EngineStats()
        return state.withLock { s in
            DownloadProgress(bytesDone: s.bytesAlreadyDone + e.bytes - s.engineBytesAtStart, bytesTotal: s.summary.bytesTotal,
                             objectsDone: s.objectsDone, objectsTotal: s.summary.selected, engine: e)
        }
    }

    public func workerPIDs() -> [pid_t] { state.withLock { $0.engine }?.workerPIDs() ?? [] }
}
