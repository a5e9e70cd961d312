/// The read-only file system the mount serves: answers FUSE requests from the namespace (built
/// from listings in the cache index) and the block cache.
///
/// Handlers return a `FSResult` (or, for `open` and `read`, pass it to a completion) and never
/// reply themselves: `FuseBridge` does, from the result. Failures are `FSError`s, which derive
/// their errno in one place.
///
/// Read path (`MountFilesystem+Read.swift`): a hit is answered on the FUSE thread: the blocks
/// are checked present (in memory for blocks this process already trusts, else one index
/// query), `pread` from the open file's data-file descriptor into a pooled buffer that the
/// bridge replies from. A miss asks `CacheFiller` for the blocks under the read in the
/// **urgent** lane, which overtakes queued prefetch work and joins a fetch already under way
/// instead of starting another; the completion runs when the blocks land. Opens after
/// `--metadata-ttl` ask the remote for the file's current version first.
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

/// A completion called at most once, whoever gets there first (the fetch or the deadline).
final class OnceCompletion: Sendable {
    private let done: FSCompletion
    private let sent = Mutex(false)
    init(_ done: @escaping FSCompletion) { self.done = done }
    /// Completes with `result` unless completed already; true if this call did.
    @discardableResult
    func callAsFunction(_ result: @autoclosure () -> FSResult) -> Bool {
        guard sent.withLock({ sent in defer { sent = true }; return !sent }) else { return false }
        done(result())
        return true
    }
}

public final class MountFilesystem: FuseHandler, @unchecked Sendable {  // @unchecked: `OpenFile`s leave `lock` and are changed under it again
    /// A read that missed is answered EIO if its data has not come after this long (retries
    /// with backoff take up to ~15 s, a hung worker is replaced after 30 s).
    static let missDeadline = 120.0
    let namespace: Namespace
    let cache: any BlockStore
    let filler: CacheFiller
    let remote: MountRemote?
    let bucket: String
    let uid: UInt32
    let gid: UInt32
    /// Kernel cache lifetime of attributes and names (`--metadata-ttl`).
    let ttl: Double
    let logger: Logger
    let lock = NSLock()
    private var hits: Int64 = 0
    private var misses: Int64 = 0
    /// Since mount, for `soak status`.
    private var totalHits: Int64 = 0
    private var totalMisses: Int64 = 0
    private var nextFH: UInt64 = 1
    /// An open file: the object version it opened (pinned while open, never mixed with another),
    /// its data file's descriptor once it has one, and where the last read ended, to spot
    /// sequential readers.
    final class OpenFile {
        var object: CachedObject
        let ino: UInt64
        var fd: Int32 = -1
        var users = 0
        var released = false
        var nextOffset: Int64 = 0
        var readAheadUpTo = -1
        init(object: CachedObject, ino: UInt64) { self.object = object; self.ino = ino }
    }
    var handles: [UInt64: OpenFile] = [:]
    /// Open directories: the entries readdir pages through (a snapshot taken at opendir).
    private var directories: [UInt64: [DirectoryEntry]] = [:]
    /// Blocks fetched ahead of a sequential reader (`--read-ahead`, in MiB = blocks).
    let readAheadBlocks: Int
    /// Called with each read's latency (seconds) and whether it was a hit (for metrics).
    public var readObserver: (@Sendable (_ seconds: Double, _ hit: Bool, _ bytes: Int) -> Void)?
    /// Read-ahead goes out as few, large requests: a sequential reader's window is topped up
    /// only once it has drained to half, so each request spans at least half the window. Per
    /// request costs dominate small ranges (the server's CPU per byte falls with the request
    /// size: docs/BENCHMARKS.md, mount read-ahead), and one connection streams a run faster
    /// than a reader consumes it; its blocks are served as each lands.
    static let refillFraction = 2
    /// Blocks one read-ahead request may span: a window plus a tail too small to leave behind.
    var readAheadRun: Int { readAheadBlocks + readAheadBlocks / 2 + 1 }
    /// A first read at offset 0 at least this large is the start of a sequential reader (the
    /// kernel's read-ahead makes `cat`'s first request 128 KiB or more; a 4 KiB `pread` is not).
    static let sequentialStartBytes = 128 << 10
    /// A reader opening the files of a directory in name order gets the start of the next files
    /// fetched ahead (`cat dir/*`, `xargs cat`, data loaders): up to this many files, and no more
    /// than `--read-ahead` blocks in all.
    static let directoryReadAheadFiles = 8
    /// Opens remembered per directory to spot such readers (8 parallel readers × 2 files).
    static let recentOpensPerDirectory = 16
    /// An open counts as in order when this many files before it were opened recently. One was
    /// too loose: random reads over a directory often found the file before among the last
    /// opens, and the read-ahead this started (up to `--read-ahead` of the next files) slowed
    /// the random reads themselves (docs/BENCHMARKS.md, mount read-ahead).
    static let inOrderRun = 2
    /// Recently opened files per directory (oldest first).
    var recentOpens: [UInt64: [UInt64]] = [:]
    /// Files the directory read-ahead acted on lately (oldest first). A file stays in the window
    /// for several opens and is handled at the first: no index query or fadvise on every open.
    var recentlyAhead: [UInt64] = []
    static let recentlyAheadLimit = 64
    let replies = DispatchQueue(label: "soak.mount.replies", attributes: .concurrent)
    let buffers = BufferPool(size: Int(FuseSession.maxReadahead))

    public init(namespace: Namespace, cache: any BlockStore, filler: CacheFiller, remote: MountRemote?, bucket: String,
                uid: UInt32, gid: UInt32, ttl: Double, readAheadBlocks: Int, logger: Logger) {
        self.namespace = namespace; self.cache = cache; self.filler = filler; self.remote = remote; self.bucket = bucket
        self.uid = uid; self.gid = gid; self.ttl = ttl; self.readAheadBlocks = readAheadBlocks; self.logger = logger
    }

    func attributes(_ e: Namespace.Entry) -> FuseAttributes {
        FuseAttributes(ino: e.ino, size: e.object?.size ?? 0, isDirectory: e.isDirectory, links: e.links,
                       mtime: e.mtime, uid: uid, gid: gid)
    }

    // MARK: - Names

    public func lookup(parent: UInt64, name: String) -> FSResult {
        do {
            guard let e = try namespace.lookup(parent: parent, name: name) else { return .success(.noEntry(ttl: ttl)) }
            return .success(.entry(attributes(e), ttl: ttl))
        } catch {
            let e = FSError.listing(error)
            logger.error("lookup of \(name): \(e)")
            return .failure(e)
        }
    }

    public func getattr(ino: UInt64) -> FSResult {
        guard let e = namespace.entry(ino) else { return .failure(.notFound("inode \(ino)")) }
        return .success(.attr(attributes(e), ttl: ttl))
    }

    public func opendir(ino: UInt64) -> FSResult {
        guard let e = namespace.entry(ino) else { return .failure(.notFound("inode \(ino)")) }
        guard e.isDirectory else { return .failure(.notADirectory(e.name)) }
        let c: (dir: Namespace.Entry, parent: Namespace.Entry, children: [Namespace.Entry])?
        do { c = try namespace.contents(ino) } catch {
            let e = FSError.listing(error)
            logger.error("listing a directory: \(e)")
            return .failure(e)
        }
        guard let c else { return .failure(.notADirectory(e.name)) }
        var entries = [DirectoryEntry(name: ".", attr: attributes(c.dir)), DirectoryEntry(name: "..", attr: attributes(c.parent))]
        entries.reserveCapacity(c.children.count + 2)
        for child in c.children { entries.append(DirectoryEntry(name: child.name, attr: attributes(child))) }
        lock.lock()
        let fh = nextFH; nextFH += 1
        directories[fh] = entries
        lock.unlock()
        return .success(.open(fh: fh, keepCache: false))
    }

    public func readdir(ino: UInt64, fh: UInt64, offset: Int64) -> FSResult {
        lock.lock(); let entries = directories[fh]; lock.unlock()
        guard let entries else { return .failure(.badHandle(fh)) }
        return .success(.directory(entries, offset: Int(max(0, offset))))
    }

    public func releasedir(ino: UInt64, fh: UInt64) -> FSResult {
        lock.lock(); directories[fh] = nil; lock.unlock()
        return .success(.none)
    }

    // MARK: - Files

    public func open(ino: UInt64, flags: Int32, done: @escaping FSCompletion) {
        guard let e = namespace.entry(ino) else { return done(.failure(.notFound("inode \(ino)"))) }
        guard let o = e.object else { return done(.failure(.isADirectory(e.name))) }
        if flags & O_ACCMODE != O_RDONLY || flags & (O_TRUNC | O_APPEND) != 0 { return done(.failure(.readOnly(e.name))) }
        guard let remote, namespace.needsRevalidation(ino) else { return finishOpen(ino: ino, o, done) }
        // After the TTL: ask for the current version (a HEAD) off the FUSE thread.
        replies.async { [self] in
            do {
                guard let current = try remote.current(o) else {
                    namespace.update(ino, object: nil)
                    return done(.failure(.notFound(PathError.printable(o.key))))
                }
                // A new version has a new inode: ESTALE makes the kernel look the name up again
                // (LOOKUP_REVAL) and open that, while files open on the old inode keep the old bytes.
                // So does an old inode whose name a listing dropped meanwhile (its directory went
                // and came back): the key exists, and the lookup finds what the listing shows.
                guard let e = namespace.update(ino, object: current), e.ino == ino else {
                    return done(.failure(.stale(PathError.printable(o.key))))
                }
                finishOpen(ino: ino, current, done)
            } catch {
                logger.warning("could not revalidate \(o.key), opening the cached version: \(error)")
                finishOpen(ino: ino, o, done)
            }
        }
    }

    private func finishOpen(ino: UInt64, _ shown: CachedObject, _ done: FSCompletion) {
        // The index row has the current generation (data dropped since the listing moves it on).
        var o = shown
        if let row = try? cache.object(id: shown.id), row.etag == shown.etag { o = row }
        lock.lock()
        let fh = nextFH; nextFH += 1
        handles[fh] = OpenFile(object: o, ino: ino)
        lock.unlock()
        cache.pin(o.id)
        cache.noteAccess(o.id)
        done(.success(.open(fh: fh, keepCache: true)))  // an inode's bytes never change
        readAheadInDirectory(opened: ino)
    }

    public func release(ino: UInt64, fh: UInt64) -> FSResult {
        lock.lock()
        let h = handles.removeValue(forKey: fh)
        var fd: Int32 = -1
        if let h {
            h.released = true
            if h.users == 0 { fd = h.fd; h.fd = -1 }
        }
        lock.unlock()
        if fd >= 0 { close(fd) }
        if let h { cache.unpin(h.object.id) }
        return .success(.none)
    }

    public func statfs() -> FSResult {
        let t = namespace.totals
        return .success(.statfs(blocks: UInt64((t.bytes + (1 << 20) - 1) >> 20), files: UInt64(t.inodes)))
    }

    func record(hit: Bool) {
        lock.lock()
        if hit { hits += 1; totalHits += 1 } else { misses += 1; totalMisses += 1 }
        lock.unlock()
    }

    /// Reads served from the cache and reads that had to fetch, since mount.
    public var readCounts: (hits: Int64, misses: Int64) {
        lock.lock(); defer { lock.unlock() }
        return (totalHits, totalMisses)
    }

    /// Adds the hits and misses since the last call to the index's counters, and the objects
    /// opened since to the LRU order.
    public func flushCounters() {
        lock.lock(); let h = hits, m = misses; hits = 0; misses = 0; lock.unlock()
        try? cache.countReads(hits: h, misses: m)
        try? cache.flushAccess()
    }
}
