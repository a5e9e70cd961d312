/// `soak download`: list a prefix, plan byte-range parts, feed the engine, finalize files.
///
/// Data flow: `ObjectStore.listAll` → filter (`KeyFilter`) → safe local paths (`SafePath`,
/// `PathConflicts`) → skip files already complete (size + ETag xattr, or size + mtime) →
/// resume partial files from their state → submit missing parts to `FetchEngine` (bulk lane)
/// → on each completed part, record it in the state; when the last part lands, stamp the
/// ETag and mtime and rename into place. A data tool never sees a half file under its name.
import Crypto
import CSys
import Foundation
import Logging
import S3
import SoakCore
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

public struct DownloadFailure: Sendable, CustomStringConvertible {
    public var key: String
    public var reason: String
    public var description: String { "\(key): \(reason)" }
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

/// A snapshot for the progress display.
public struct DownloadProgress: Sendable {
    public var bytesDone: Int64
    public var bytesTotal: Int64
    public var objectsDone: Int
    public var objectsTotal: Int
    public var engine: EngineStats
}

public final class Downloader: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock` (engine callbacks arrive on its thread).
    /// 8 MiB parts: large enough that per-request overhead is negligible, small enough that a
    /// big object spreads over every worker.
    public static let defaultPartSize: Int64 = 8 << 20
    /// Objects up to 16 MiB are one request: splitting them costs more requests than it saves.
    public static let defaultSinglePartLimit: Int64 = 16 << 20

    private struct ObjectTask {
        var info: ObjectInfo
        var path: SafePath
        var partial: PartialFile
        var state: PartialState
        var partsLeft: Int
        var failed = false
        var multiPart: Bool
    }

    private let options: DownloadOptions
    private let store: ObjectStore
    private let settings: EngineSettings
    private let workerExecutable: String
    private let builder: S3RequestBuilder
    private let logger: Logger
    private let lock = NSLock()
    private let cond = NSCondition()
    private var tasks: [Int: ObjectTask] = [:]
    private var open = 0
    private var summary = DownloadSummary()
    private var bytesAlreadyDone: Int64 = 0
    private var objectsDone = 0
    private var engine: FetchEngine?

    public init(options: DownloadOptions, store: ObjectStore, builder: S3RequestBuilder, settings: EngineSettings,
                workerExecutable: String, logger: Logger) {
        self.options = options; self.store = store; self.builder = builder; self.settings = settings
        self.workerExecutable = workerExecutable; self.logger = logger
    }

    /// Runs the whole download. `tick` is called about every `tickInterval` seconds with progress;
    /// `shouldStop` is polled as often and ends the run early (interrupted).
    public func run(tickInterval: Double = 0.2, tick: (DownloadProgress) -> Void = { _ in },
                    shouldStop: () -> Bool = { false }) throws -> DownloadSummary {
        let t0 = MonotonicTime.now()
        let dest = options.destination
        try prepareDestination(dest)

        // 1. List and select.
        var selected: [(ObjectInfo, SafePath)] = []
        var listed: [ObjectInfo] = []
        try withRetries(policy: settings.retry, clock: SystemClock(), random: &randomSource,
                        isRetryable: { ($0 as? S3Error)?.isRetryable ?? false },
                        retryAfter: { ($0 as? S3Error)?.retryAfter },
                        onRetry: { n, e, d in self.logger.warning("listing failed (attempt \(n)), retrying in \(String(format: "%.1f", d)) s: \(e)") }) {
            listed.removeAll()
            try store.listAll(bucket: options.bucket, prefix: options.prefix) { listed.append($0) }
        }
        summary.listed = listed.count
        for o in listed {
            let rel = String(o.key.dropFirst(options.prefix.count))
            guard options.filter.includes(rel) else { continue }
            switch Result(catching: { () throws(PathError) -> SafePath in try SafePath.fromKey(rel) }) {
            case .success(let p):
                if p.components.first == PartialFile.directoryName {
                    summary.failures.append(DownloadFailure(key: o.key, reason: "name is reserved for soak's partial files"))
                    continue
                }
                selected.append((o, p))
            case .failure(.directoryMarker(_)):
                // A `dir/` marker object: make the directory, nothing to fetch.
                if let p = try? SafePath.fromKey(String(rel.dropLast())) { try? makeDirectories(dest + "/" + p.relativePath) }
            case .failure(let e):
                summary.failures.append(DownloadFailure(key: o.key, reason: "unsafe key: \(e)"))
            }
        }
        let (keep, conflicts) = PathConflicts.find(selected.map(\.1))
        let keepSet = Set(keep)
        for c in conflicts {
            summary.conflicts.append(c.relativePath)
            summary.failures.append(DownloadFailure(
                key: options.prefix + c.relativePath,
                reason: "is both a file and a directory prefix; the directory's contents were downloaded instead"))
        }
        selected = selected.filter { keepSet.contains($0.1) }
        summary.selected = selected.count + conflicts.count

        // 2. Plan: skip complete files, resume partial ones.
        var work: [(Int, ObjectInfo, SafePath, PartialFile, PartialState, [Int])] = []
        var tag = 0
        for (o, p) in selected {
            summary.bytesTotal += o.size
            let finalPath = dest + "/" + p.relativePath
            if isUpToDate(finalPath, o) {
                summary.skippedUpToDate += 1
                bytesAlreadyDone += o.size
                objectsDone += 1
                continue
            }
            let partial = PartialFile(destination: dest, relativePath: p.relativePath)
            tag += 1
            if o.size > 0 && o.size <= options.singlePartLimit {
                // One request into an unnamed file the worker links in: no partial state at all.
                let state = PartialState(key: o.key, etag: o.etag, size: o.size, partSize: o.size, done: [])
                work.append((tag, o, p, partial, state, [0]))
                continue
            }
            let partSize = o.size > options.singlePartLimit ? options.partSize : 1
            let nParts = o.size == 0 ? 0 : Int((o.size + partSize - 1) / partSize)
            var state = PartialState(key: o.key, etag: o.etag, size: o.size, partSize: partSize, done: [])
            if let old = partial.loadState(), old.etag == o.etag, old.size == o.size, old.partSize == partSize, old.key == o.key {
                state = old
            } else {
                partial.discard()
            }
            let missing = (0..<nParts).filter { !state.done.contains($0) }
            bytesAlreadyDone += Int64(nParts - missing.count) * partSize
            work.append((tag, o, p, partial, state, missing))
        }

        // 3. Fetch.
        let engine = FetchEngine(settings: settings, workerExecutable: workerExecutable, builder: builder,
                                 logger: logger) { [weak self] c in self?.completed(c) }
        self.engine = engine
        if work.contains(where: { !$0.5.isEmpty }) { try engine.start() }
        for (tag, o, p, partial, state, missing) in work {
            let multi = o.size > options.singlePartLimit
            lock.lock()
            tasks[tag] = ObjectTask(info: o, path: p, partial: partial, state: state, partsLeft: missing.count,
                                    multiPart: multi)
            open += 1
            lock.unlock()
            if missing.isEmpty {
                finalize(tag)
                continue
            }
            var publish: PublishSpec?
            if o.size <= options.singlePartLimit {
                let finalPath = dest + "/" + p.relativePath
                do {
                    try makeDirectories(parentDirectory(of: finalPath))
                } catch {
                    lock.lock()
                    summary.failures.append(DownloadFailure(key: o.key, reason: "\(error)"))
                    tasks[tag] = nil; open -= 1
                    lock.unlock()
                    continue
                }
                publish = PublishSpec(finalPath: finalPath, etag: o.etag, mtime: o.lastModified)
            }
            for part in missing {
                let start = Int64(part) * state.partSize
                let end = min(o.size, start + state.partSize) - 1
                engine.submit(bucket: options.bucket, key: o.key, etag: o.etag.isEmpty ? nil : o.etag,
                              range: start...end, path: partial.dataPath, fileOffset: start, publish: publish,
                              lane: .bulk, tag: tag << 20 | part)
            }
        }

        // 4. Wait, reporting progress.
        var interrupted = false
        while true {
            lock.lock(); let remaining = open; lock.unlock()
            if remaining == 0 { break }
            if shouldStop() { interrupted = true; break }
            cond.lock(); _ = cond.wait(until: Date(timeIntervalSinceNow: tickInterval)); cond.unlock()
            tick(progress())
        }
        engine.stop()
        tick(progress())
        lock.lock()
        summary.interrupted = interrupted
        summary.bytesFetched = engine.snapshot().bytes
        summary.seconds = MonotonicTime.now() - t0
        if interrupted {
            for t in tasks.values where !t.failed {
                summary.failures.append(DownloadFailure(key: t.info.key, reason: "interrupted (partial kept for resume)"))
            }
        }
        let result = summary
        lock.unlock()
        rmdir(dest + "/" + PartialFile.directoryName)
        return result
    }

    public func progress() -> DownloadProgress {
        let e = engine?.snapshot() ?? EngineStats()
        lock.lock(); defer { lock.unlock() }
        return DownloadProgress(bytesDone: bytesAlreadyDone + e.bytes, bytesTotal: summary.bytesTotal,
                                objectsDone: objectsDone, objectsTotal: summary.selected, engine: e)
    }

    /// Worker PIDs of the running engine (tests kill one to prove recovery).
    public func workerPIDs() -> [pid_t] { engine?.workerPIDs() ?? [] }

    private var randomSource = SystemRandomNumberGenerator()

    // MARK: - Completion (engine thread)

    private func completed(_ c: FetchCompletion) {
        let tag = c.tag >> 20, part = c.tag & 0xFFFFF
        lock.lock()
        guard var t = tasks[tag], !t.failed else { lock.unlock(); return }
        if let err = c.error {
            t.failed = true
            tasks[tag] = t
            var reason = err.description
            if err.isPreconditionFailed {
                // The object changed since it was listed: what we have is of the old version.
                t.partial.discard()
                reason = "the object changed during the download (ETag no longer \(t.info.etag)); rerun to fetch the new version"
            }
            summary.failures.append(DownloadFailure(key: t.info.key, reason: reason))
            tasks[tag] = nil
            open -= 1
            lock.unlock()
            signal()
            return
        }
        t.state.done.insert(part)
        t.partsLeft -= 1
        tasks[tag] = t
        let last = t.partsLeft == 0
        lock.unlock()
        if last && !t.multiPart && t.info.size > 0 {
            // The worker already linked the file in place.
            lock.lock()
            summary.downloaded += 1; objectsDone += 1
            tasks[tag] = nil; open -= 1
            lock.unlock()
            signal()
        } else if last {
            finalize(tag)
        } else if t.multiPart {
            do { try t.partial.saveState(t.state) } catch { logger.warning("could not save resume state: \(error)") }
        }
    }

    /// Stamps ETag and mtime on the complete data file and renames it into place.
    private func finalize(_ tag: Int) {
        lock.lock()
        guard let t = tasks[tag] else { lock.unlock(); return }
        lock.unlock()
        let finalPath = options.destination + "/" + t.path.relativePath
        var failure: String?
        do {
            if t.info.size == 0 {
                let fd = Glibc.open(t.partial.dataPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw LocalIOError(errno: errno, operation: "create", path: t.partial.dataPath) }
                close(fd)
            }
            var st = stat()
            guard stat(t.partial.dataPath, &st) == 0 else {
                throw LocalIOError(errno: errno, operation: "stat", path: t.partial.dataPath)
            }
            guard Int64(st.st_size) == t.info.size else {
                throw LocalIOError(errno: EIO, operation: "size check (\(st.st_size) != \(t.info.size))", path: t.partial.dataPath)
            }
            Self.stamp(t.partial.dataPath, t.info)
            let parent = parentDirectory(of: finalPath)
            try makeDirectories(parent)
            var fst = stat()
            if lstat(finalPath, &fst) == 0 && (fst.st_mode & S_IFMT) == S_IFDIR {
                throw LocalIOError(errno: EISDIR, operation: "replace", path: finalPath)
            }
            guard rename(t.partial.dataPath, finalPath) == 0 else {
                throw LocalIOError(errno: errno, operation: "rename into place", path: finalPath)
            }
            unlink(t.partial.statePath)
        } catch {
            failure = "\(error)"
        }
        lock.lock()
        if let failure {
            summary.failures.append(DownloadFailure(key: t.info.key, reason: failure))
        } else {
            summary.downloaded += 1
            objectsDone += 1
        }
        tasks[tag] = nil
        open -= 1
        lock.unlock()
        signal()
    }

    /// Wakes the waiting main thread, but only when the last object is done: it wakes on its
    /// own every tick for progress, and a wake-up per object was thousands of futex round trips.
    private func signal() {
        lock.lock(); let done = open == 0; lock.unlock()
        if done { cond.lock(); cond.broadcast(); cond.unlock() }
    }

    // MARK: - Files

    static let etagXattr = PublishSpec.etagXattr

    static func stamp(_ path: String, _ o: ObjectInfo) {
        _ = o.etag.withCString { csys_setxattr(path, etagXattr, $0, strlen($0)) }
        if let lm = o.lastModified {
            var times = [timespec(tv_sec: Int(lm), tv_nsec: Int((lm - lm.rounded(.down)) * 1e9)),
                         timespec(tv_sec: Int(lm), tv_nsec: Int((lm - lm.rounded(.down)) * 1e9))]
            _ = utimensat(AT_FDCWD, path, &times, 0)
        }
    }

    /// Complete and unchanged: same size and the ETag stamped at download (or, where xattrs are
    /// unsupported, the listing's mtime).
    func isUpToDate(_ path: String, _ o: ObjectInfo) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int64(st.st_size) == o.size else { return false }
        var buf = [CChar](repeating: 0, count: 256)
        let n = csys_getxattr(path, Self.etagXattr, &buf, buf.count - 1)
        if n >= 0 {
            return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == o.etag
        }
        if errno == ENOTSUP, let lm = o.lastModified { return Int(st.st_mtim.tv_sec) == Int(lm) }
        return false
    }

    private func prepareDestination(_ dest: String) throws {
        try makeDirectories(dest)
        guard access(dest, W_OK) == 0 else {
            throw LocalIOError(errno: errno, operation: "destination is not writable:", path: dest)
        }
        try makeDirectories(dest + "/" + PartialFile.directoryName)
    }

    /// Directories this run created or found, so each is checked once.
    private var knownDirectories = Set<String>()
    private let directoriesLock = NSLock()

    private func makeDirectories(_ path: String) throws {
        directoriesLock.lock()
        let known = knownDirectories.contains(path)
        directoriesLock.unlock()
        if known { return }
        try createDirectories(path)
        directoriesLock.lock()
        knownDirectories.insert(path)
        directoriesLock.unlock()
    }

    private func createDirectories(_ path: String) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw LocalIOError(errno: ENOTDIR, operation: "mkdir", path: path) }
            return
        }
        let parent = parentDirectory(of: path)
        if !parent.isEmpty && parent != path { try createDirectories(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw LocalIOError(errno: errno, operation: "mkdir", path: path)
        }
    }
}
