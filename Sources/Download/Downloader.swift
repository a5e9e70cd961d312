/// `soak download`: list a prefix, plan byte-range parts, feed the engine, finalize files.
///
/// Data flow: the worker pool starts, then `ObjectStore.listPage` page by page → filter
/// (`KeyFilter`) → safe local paths (`SafePath`) → `ConflictGate` (a key that is also a
/// directory prefix yields to the directory) → skip files already complete (size + ETag xattr,
/// or size + mtime) → small objects: one GET the worker publishes into place when complete;
/// large ones: resume from their partial state and submit the missing 8 MiB ranges (bulk lane)
/// → record each landed range in the state; when the last lands, stamp the ETag and mtime and
/// rename into place. A data tool never sees a half file under its name.
///
/// Every path under DEST is resolved from one descriptor of it (`DestinationRoot`), here and in
/// the workers: a symbolic link already in DEST is never followed out of it, written through or
/// replaced; a key that would need that fails with one line.
import CSys
import Engine
import Foundation
import Logging
import S3
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct DownloadOptions: Sendable {
    public var bucket: String
    public var prefix: String
    public var destination: String
    public var filter: KeyFilter
    /// Objects larger than `singlePartLimit` are split into `partSize` ranges fetched in parallel.
    public var partSize: Int64 = Downloader.defaultPartSize
    public var singlePartLimit: Int64 = Downloader.defaultSinglePartLimit
    public init(bucket: String, prefix: String, destination: String, filter: KeyFilter) {
        self.bucket = bucket; self.prefix = prefix; self.destination = destination; self.filter = filter
    }
}

public struct DownloadSummary: Sendable {
    public var listed = 0
    public var selected = 0
    public var skippedUpToDate = 0
    public var downloaded = 0
    public var bytesTotal: Int64 = 0
    public var bytesFetched: Int64 = 0
    public var seconds = 0.0
    public var failures: [DownloadFailure] = []
    public var conflicts: [String] = []
    public var interrupted = false
}

public final class Downloader: Sendable {
    /// 8 MiB parts: large enough that per-request overhead is negligible, small enough that a
    /// big object spreads over every worker.
    public static let defaultPartSize: Int64 = 8 << 20
    /// Objects up to 16 MiB are one request: splitting them costs more requests than it saves.
    public static let defaultSinglePartLimit: Int64 = 16 << 20

    struct ObjectTask {
        var info: ObjectInfo
        var path: SafePath
        var partial: PartialFile
        var state: PartialState
        var partsLeft: Int
        var failed = false
        var multiPart: Bool
        /// Engine ids of its orders, to take back the queued ones when its version changed.
        var orders: [Int] = []
        /// Orders submitted and not yet completed or taken back.
        var outstanding = 0
        /// Bytes of this version counted in the progress (resumed parts, parts landed).
        var countedBytes: Int64 = 0
        /// Times its version changed during this run.
        var versionChanges = 0
        /// After a 412 and HEAD's answer: what to do once no order of this version is out (see
        /// `settle`), so no byte of the old version can land in a file the new one uses.
        var settle: VersionStep?
    }

    private let options: DownloadOptions
    private let store: ObjectStore
    private let settings: EngineSettings
    private let workerExecutable: String
    private let builder: S3RequestBuilder
    private let logger: Logger
    private let cond = NSCondition()
    /// The run's objects and counts (engine callbacks arrive on its thread).
    struct Work {
        var tasks: [Int: ObjectTask] = [:]
        var open = 0
        var summary = DownloadSummary()
        var bytesAlreadyDone: Int64 = 0
        var objectsDone = 0
        var nextTag = 0
        var engine: FetchEngine?
        var credentials: CredentialKeeper?
    }
    let work = Mutex(Work())
    var engine: FetchEngine? { work.withLock { $0.engine } }
    /// Refreshed credentials for the workers (set before `run`); nil keeps the builder's.
    public var credentials: CredentialKeeper? {
        get { work.withLock { $0.credentials } }
        set { work.withLock { $0.credentials = newValue } }
    }

    /// Builds the engine's transport; nil: the worker pool (`workerExecutable`).
    private let transportFactory: (@Sendable () -> FetchTransport)?

    /// `transport` builds what runs the fetches (tests: a `StoreTransport`); by default a pool of
    /// `workerExecutable __worker` processes.
    public init(options: DownloadOptions, store: ObjectStore, builder: S3RequestBuilder, settings: EngineSettings,
                workerExecutable: String, logger: Logger, transport: (@Sendable () -> FetchTransport)? = nil) {
        self.options = options; self.store = store; self.builder = builder; self.settings = settings
        self.workerExecutable = workerExecutable; self.logger = logger; self.transportFactory = transport
    }

    func makeTransport() -> FetchTransport {
        transportFactory?() ?? WorkerPoolTransport(settings: settings, workerExecutable: workerExecutable,
                                                   builder: builder, logger: logger)
    }

    /// Runs the whole download. `tick` is called about every `tickInterval` seconds with progress;
    /// `shouldStop` is polled as often and ends the run early (interrupted).
    ///
    /// The worker pool starts before the listing, and objects are handed to it page by page, so
    /// the first GETs overlap the rest of the listing.
    public func run(tickInterval: Double = 0.2, tick: (DownloadProgress) -> Void = { _ in },
                    shouldStop: () -> Bool = { false }) throws -> DownloadSummary {
        let t0 = MonotonicTime.now()
        let dest = options.destination
        try prepareDestination(dest)
        defer { closePartialDirectory() }
        let engine = FetchEngine(settings: settings, transport: makeTransport(), logger: logger) { [weak self] c in
            self?.completed(c)
        }
        engine.versionCheck = VersionChecker(store: store, retry: settings.retry, logger: logger)
        if let credentials { engine.follow(credentials) }
        work.withLock { $0.engine = engine }
        try engine.start()

        // 1. List page by page; select, hold back possible file/directory conflicts, start the rest.
        var interrupted = false
        do {
            var gate = ConflictGate<(ObjectInfo, SafePath)>(sorted: ConflictGate<Any>.listsSorted(bucket: options.bucket))
            var warnedUnsorted = false
            let complete = try ListingPager.run(store: store, bucket: options.bucket, prefix: options.prefix,
                                                retry: settings.retry, logger: logger, shouldStop: shouldStop) { page in
                for o in page.objects {
                    work.withLock { $0.summary.listed += 1 }
                    guard let (rel, p) = select(o) else { continue }
                    let released = gate.offer(path: rel, item: p.map { (o, $0) })
                    for (c, _) in released.conflicts { reportConflict(c) }
                    for (r, rp) in released.ready { startObject(r, rp, engine: engine) }
                }
                if gate.switchedToUnsorted && !warnedUnsorted {
                    warnedUnsorted = true
                    logger.warning("the listing is not sorted: checking file/directory conflicts at its end")
                }
                tick(progress())
            }
            interrupted = !complete
            if !interrupted {
                let settled = gate.finish()
                for (c, _) in settled.conflicts { reportConflict(c) }
                for (r, rp) in settled.ready { startObject(r, rp, engine: engine) }
            }
        } catch {
            engine.stop()
            throw error
        }

        // 2. Wait, reporting progress.
        while !interrupted {
            // `open` is read under `cond`, which `signal` takes to announce the last object, so
            // the announcement cannot fall between the read and the wait (it did: a download
            // then ended up to a tick, 0.2 s, late).
            cond.lock()
            let remaining = work.withLock { $0.open }
            if remaining == 0 { cond.unlock(); break }
            if shouldStop() { cond.unlock(); interrupted = true; break }
            _ = cond.wait(until: Date(timeIntervalSinceNow: tickInterval))
            cond.unlock()
            tick(progress())
        }
        engine.stop()
        tick(progress())
        let bytes = engine.snapshot().bytes
        return work.withLock { w in
            w.summary.interrupted = interrupted
            w.summary.bytesFetched = bytes
            w.summary.seconds = MonotonicTime.now() - t0
            if interrupted {
                for t in w.tasks.values where !t.failed {
                    w.summary.failures.append(DownloadFailure(key: t.info.key, reason: "interrupted (partial kept for resume)"))
                }
            }
            return w.summary
        }
    }

    /// Filter and path safety for one listed object: nil when it is skipped or refused (the
    /// refusal is recorded), else its relative key and safe path (nil path for a `dir/` marker,
    /// whose directory is made here).
    private func select(_ o: ObjectInfo) -> (String, SafePath?)? {
        guard let rel = KeyFilter.relativeKey(o.key, prefix: options.prefix), options.filter.includes(rel) else {
            return nil
        }
        switch Result(catching: { () throws(PathError) -> SafePath in try SafePath.fromKey(rel) }) {
        case .success(let p):
            if p.components.first == PartialFile.directoryName {
                fail(o.key, "name is reserved for soak's partial files")
                return nil
            }
            return (rel, p)
        case .failure(.directoryMarker(_)):
            // A `dir/` marker object: make the directory, nothing to fetch.
            if let p = try? SafePath.fromKey(String(rel.dropLast())) {
                do { try makeDirectories(p.relativePath) } catch { fail(o.key, "\(error)") }
            }
            return (rel, nil)
        case .failure(let e):
            fail(o.key, "unsafe key: \(e)")
            return nil
        }
    }

    private func fail(_ key: String, _ reason: String) {
        work.withLock { $0.summary.failures.append(DownloadFailure(key: key, reason: reason)) }
    }

    private func reportConflict(_ o: ObjectInfo) {
        work.withLock { w in
            w.summary.selected += 1
            w.summary.conflicts.append(o.key)
            w.summary.failures.append(DownloadFailure(
                key: o.key, reason: "is both a file and a directory prefix; the directory's contents were downloaded instead"))
        }
    }

    /// Plans one selected object and submits what it still needs: nothing when the file is
    /// complete and unchanged; one publish-on-completion GET up to `singlePartLimit`; else the
    /// ranges its partial state does not have yet.
    /// `replacing`: the listed version this one replaces after a 412 (counted as selected then),
    /// and how many times its version changed so far.
    func startObject(_ o: ObjectInfo, _ p: SafePath, engine: FetchEngine,
                             replacing: (info: ObjectInfo, changes: Int)? = nil) {
        let dest = options.destination
        work.withLock { w in
            if let old = replacing?.info {
                w.summary.bytesTotal += o.size - old.size
            } else {
                w.summary.selected += 1
                w.summary.bytesTotal += o.size
            }
        }
        var existing = Existing.absent
        if !startedEmpty { existing = self.existing(p.relativePath, o) }
        if case .refused(let e) = existing {
            // A link in the way: fail now rather than after fetching the object.
            fail(o.key, "\(e)")
            return
        }
        if case .upToDate = existing {
            work.withLock { w in
                w.summary.skippedUpToDate += 1
                w.bytesAlreadyDone += o.size
                w.objectsDone += 1
            }
            return
        }
        let partial = PartialFile(destination: dest, relativePath: p.relativePath, directory: partialFD)
        if replacing != nil { partial.discard() }  // the old version's; none of its orders is out
        let multi = o.size > options.singlePartLimit
        var state = PartialState(key: o.key, etag: o.etag, size: o.size, partSize: max(o.size, 1), done: [])
        var missing: [Int] = o.size > 0 ? [0] : []
        if multi {
            state.partSize = options.partSize
            let nParts = Int((o.size + options.partSize - 1) / options.partSize)
            if let old = partial.loadState(), old.etag == o.etag, old.size == o.size,
               old.partSize == options.partSize, old.key == o.key {
                state = old
            } else {
                partial.discard()
            }
            missing = (0..<nParts).filter { !state.done.contains($0) }
        }
        let resumed = multi ? Int64(state.done.count) * options.partSize : 0
        let tag = work.withLock { w in
            w.bytesAlreadyDone += resumed
            w.nextTag += 1
            w.tasks[w.nextTag] = ObjectTask(info: o, path: p, partial: partial, state: state, partsLeft: missing.count,
                                            multiPart: multi, outstanding: missing.count, countedBytes: resumed,
                                            versionChanges: replacing?.changes ?? 0)
            w.open += 1
            return w.nextTag
        }
        if missing.isEmpty {
            finalize(tag)
            return
        }
        var publish: PublishSpec?
        if !multi {
            do {
                try makeDirectories(parentOf(p.relativePath))
            } catch {
                work.withLock { w in
                    w.summary.failures.append(DownloadFailure(key: o.key, reason: "\(error)"))
                    w.tasks[tag] = nil; w.open -= 1
                }
                return
            }
            publish = PublishSpec(finalPath: p.relativePath, etag: o.etag, mtime: o.lastModified)
        }
        // Relative to DEST: the split object's data file, or a whole object's named temporary
        // file where its filesystem has no O_TMPFILE.
        let path = PartialFile.directoryName + "/" + (multi ? partial.dataName : partial.tempName)
        var ids: [Int] = []
        for part in missing {
            let start = Int64(part) * state.partSize
            let end = min(o.size, start + state.partSize) - 1
            ids.append(engine.submit(bucket: options.bucket, key: o.key, etag: o.etag.isEmpty ? nil : o.etag,
                                     range: start...end, root: dest, path: path, fileOffset: start,
                                     publish: publish, lane: .bulk, tag: tag << 20 | part))
        }
        work.withLock { $0.tasks[tag]?.orders = ids }
    }

    public func progress() -> DownloadProgress {
        let e = engine?.snapshot() ?? EngineStats()
        return work.withLock { w in
            DownloadProgress(bytesDone: w.bytesAlreadyDone + e.bytes, bytesTotal: w.summary.bytesTotal,
                             objectsDone: w.objectsDone, objectsTotal: w.summary.selected, engine: e)
        }
    }

    /// Worker PIDs of the running engine (tests kill one to prove recovery).
    public func workerPIDs() -> [pid_t] { engine?.workerPIDs() ?? [] }


    // MARK: - Completion (engine thread)

    private func completed(_ c: FetchCompletion) {
        let tag = c.tag >> 20, part = c.tag & 0xFFFFF
        /// What the completion leaves to do once `work` is released.
        enum Next { case nothing, settle, signal, parts(ObjectTask) }
        let next: Next = work.withLock { w in
            guard var t = w.tasks[tag], !t.failed else { return .nothing }
            t.outstanding -= 1
            if t.settle == nil, let err = c.error, err.isPreconditionFailed, let answer = c.version {
                t.settle = answer.step(changesSoFar: t.versionChanges, listedETag: t.info.etag)
                // Orders of this version no worker has yet will never be needed.
                if t.settle != nil { for id in t.orders where w.engine?.withdraw(id) == true { t.outstanding -= 1 } }
            }
            if t.settle != nil {
                w.tasks[tag] = t
                return t.outstanding <= 0 ? .settle : .nothing
            }
            if let err = c.error {
                var reason = err.description
                if err.kind == .http && err.status == 404 {
                    reason = VersionAnswer.deleted("GET answered 404" + (err.code.map { " " + $0 } ?? ""))
                } else if err.isPreconditionFailed, let answer = c.version {
                    // HEAD showed the same ETag (attempts ran out) or could not tell: the partial is
                    // of the version it names and is kept for a rerun to resume or discard.
                    reason = answer.failureReason(listedETag: t.info.etag)
                } else if err.isPreconditionFailed {
                    // The object changed since it was listed: what we have is of the old version.
                    t.partial.discard()
                    reason = "the object changed during the download (ETag no longer \(t.info.etag)); rerun to fetch the new version"
                }
                w.summary.failures.append(DownloadFailure(key: t.info.key, reason: reason))
                w.tasks[tag] = nil
                w.open -= 1
                return .signal
            }
            t.state.done.insert(part)
            t.partsLeft -= 1
            t.countedBytes += c.order.end - c.order.start + 1
            w.tasks[tag] = t
            return .parts(t)
        }
        guard case .parts(let t) = next else {
            if case .settle = next { settle(tag) } else if case .signal = next { signal() }
            return
        }
        let last = t.partsLeft == 0
        if last && !t.multiPart && t.info.size > 0 {
            // The worker already linked the file in place.
            work.withLock { w in
                w.summary.downloaded += 1; w.objectsDone += 1
                w.tasks[tag] = nil; w.open -= 1
            }
            signal()
        } else if last {
            finalize(tag)
        } else if t.multiPart {
            do { try t.partial.saveState(t.state) } catch { logger.warning("could not save resume state: \(error)") }
        }
    }

    /// Stamps ETag and mtime on the complete data file and renames it into place.
    private func finalize(_ tag: Int) {
        guard let t = work.withLock({ $0.tasks[tag] }) else { return }
        let rel = t.path.relativePath
        let partialFD = self.partialFD
        var failure: String?
        do {
            guard let root else { throw LocalIOError(errno: EBADF, operation: "finalize", path: rel) }
            // Empty objects have no range to fetch: the file is created here.
            let flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | (t.info.size == 0 ? O_CREAT | O_TRUNC : 0)
            let fd = openat(partialFD, t.partial.dataName, flags, 0o644)
            guard fd >= 0 else { throw LocalIOError(errno: errno, operation: "open", path: t.partial.dataPath) }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw LocalIOError(errno: errno, operation: "stat", path: t.partial.dataPath) }
            guard Int64(st.st_size) == t.info.size else {
                throw LocalIOError(errno: EIO, operation: "size check (\(st.st_size) != \(t.info.size))", path: t.partial.dataPath)
            }
            PublishSpec.stamp(fd: fd, etag: t.info.etag, mtime: t.info.lastModified)
            let parent = parentOf(rel)
            try makeDirectories(parent)
            let dir = try root.openDirectory(parent)
            defer { close(dir) }
            let name = String(rel.split(separator: "/").last ?? "")
            try root.checkReplaceable(in: dir, name, rel: rel)
            guard renameat(partialFD, t.partial.dataName, dir, name) == 0 else {
                throw LocalIOError(errno: errno, operation: "rename into place", path: root.display(rel))
            }
            PublishSpec.stampMtime(fd: fd, mtime: t.info.lastModified)
            t.partial.removeState()
        } catch {
            // A link in the way stays in the way: what was fetched cannot be placed.
            if error is SymlinkRefused { t.partial.discard() }
            failure = "\(error)"
        }
        work.withLock { w in
            if let failure {
                w.summary.failures.append(DownloadFailure(key: t.info.key, reason: failure))
            } else {
                w.summary.downloaded += 1
                w.objectsDone += 1
            }
            w.tasks[tag] = nil
            w.open -= 1
        }
        signal()
    }

    /// Wakes the waiting main thread, but only when the last object is done: it wakes on its
    /// own every tick for progress, and a wake-up per object was thousands of futex round trips.
    func signal() {
        let done = work.withLock { $0.open == 0 }
        if done { cond.lock(); cond.broadcast(); cond.unlock() }
    }

    // MARK: - Files (methods in Downloader+Destination.swift)

    /// Where the run writes, set up in `prepareDestination` before the engine starts.
    struct Place {
        /// DEST, held open for the run; every path below it is resolved from it.
        var root: DestinationRoot?
        /// DEST/.soak-partial, opened after checking it is a directory (not a link); -1 before.
        var partialFD: Int32 = -1
        /// The partial directory is soak's: this run made it, or it held soak's files.
        var ownsPartialDirectory = false
        /// The destination held nothing when this run began: no file in it can be from an
        /// earlier run, so objects are not looked up there first (5000 failed stats were 2% of
        /// a small-object download's CPU).
        var startedEmpty = false
    }
    let place = Mutex(Place())
    var root: DestinationRoot? { place.withLock { $0.root } }
    var partialFD: Int32 { place.withLock { $0.partialFD } }
    var startedEmpty: Bool { place.withLock { $0.startedEmpty } }

    /// Directories (relative to DEST) this run created or found, so each is checked once.
    let knownDirectories = Mutex(Set<String>())
}
