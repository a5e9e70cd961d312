/// The read-only file system the mount serves: answers FUSE requests from the namespace (built
/// from listings in the cache index) and the block cache.
///
/// Read path: a hit is answered on the FUSE thread: the blocks are checked present (in memory
/// for blocks this process already trusts, else one index query), `pread` from the open file's
/// data-file descriptor into a pooled buffer, reply. A miss asks `CacheFiller` for the blocks
/// under the read in the **urgent** lane, which overtakes queued prefetch work and joins a fetch
/// already under way instead of starting another; the reply is sent when the blocks land.
/// Opens after `--metadata-ttl` ask the remote for the file's current version first. Errors
/// map to errno in `errno(for:)`, the one place.
import Cache
import Foundation
import Logging
import Prefetcher
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

/// A FUSE request answered at most once, whoever gets there first (the fetch or the deadline).
final class OnceReply: @unchecked Sendable {
    private let request: FuseRequest
    private let lock = NSLock()
    private var sent = false
    init(_ r: FuseRequest) { request = r }
    /// Runs `send` unless a reply went out already; true if it ran.
    func reply(_ send: (FuseRequest) -> Void) -> Bool {
        lock.lock()
        if sent { lock.unlock(); return false }
        sent = true
        lock.unlock()
        send(request)
        return true
    }
}

public final class MountFilesystem: FuseHandler, @unchecked Sendable {
    /// A read that missed is answered EIO if its data has not come after this long (retries
    /// with backoff take up to ~15 s, a hung worker is replaced after 30 s).
    static let missDeadline = 120.0
    // @unchecked: the namespace locks itself; counters and open handles are guarded by `lock`.
    let namespace: Namespace
    let cache: DiskCache
    let filler: CacheFiller
    let remote: MountRemote?
    let bucket: String
    let uid: UInt32
    let gid: UInt32
    /// Kernel cache lifetime of attributes and names (`--metadata-ttl`).
    let ttl: Double
    let logger: Logger
    private let lock = NSLock()
    private var hits: Int64 = 0
    private var misses: Int64 = 0
    /// Since mount, for `soak status`.
    private var totalHits: Int64 = 0
    private var totalMisses: Int64 = 0
    private var nextFH: UInt64 = 1
    /// An open file: the object version it opened (pinned while open, never mixed with another),
    /// its data file's descriptor once it has one, and where the last read ended, to spot
    /// sequential readers.
    private final class OpenFile {
        var object: CachedObject
        let ino: UInt64
        var fd: Int32 = -1
        var users = 0
        var released = false
        var nextOffset: Int64 = 0
        var readAheadUpTo = -1
        init(object: CachedObject, ino: UInt64) { self.object = object; self.ino = ino }
    }
    private var handles: [UInt64: OpenFile] = [:]
    /// Open directories: the entries readdir pages through (a snapshot taken at opendir).
    private var directories: [UInt64: [(name: String, attr: FuseAttributes)]] = [:]
    /// Blocks fetched ahead of a sequential reader (`--read-ahead`, in MiB = blocks).
    let readAheadBlocks: Int
    /// Called with each read's latency (seconds) and whether it was a hit (for metrics).
    public var readObserver: (@Sendable (_ seconds: Double, _ hit: Bool, _ bytes: Int) -> Void)?
    /// Read-ahead goes out as few, large requests: a sequential reader's window is topped up
    /// only once it has drained to half, so each request spans at least half the window. Per
    /// request costs dominate small ranges (SeaweedFS here: 40 objects of 10 MiB took 0.67 CPU-s
    /// of server time as whole GETs, 1.15 as 2 MiB ranges, 1.94 as 1 MiB ranges), and one
    /// connection streams a run faster than a reader consumes it; its blocks are served as each
    /// lands.
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
    /// too loose: 200 random 4 KiB reads over `d/`'s 100 files often found the file before
    /// among the last opens, and the read-ahead this started (up to `--read-ahead` of the next
    /// files) took the idle TTFB p99 from 28 ms to 99 ms.
    static let inOrderRun = 2
    /// Recently opened files per directory (oldest first).
    private var recentOpens: [UInt64: [UInt64]] = [:]
    /// Files the directory read-ahead acted on lately (oldest first). A file stays in the window
    /// for several opens and is handled at the first: no index query or fadvise on every open.
    private var recentlyAhead: [UInt64] = []
    static let recentlyAheadLimit = 64
    private let replies = DispatchQueue(label: "soak.mount.replies", attributes: .concurrent)
    private let buffers = BufferPool(size: Int(FuseSession.maxReadahead))

    public init(namespace: Namespace, cache: DiskCache, filler: CacheFiller, remote: MountRemote?, bucket: String,
                uid: UInt32, gid: UInt32, ttl: Double, readAheadBlocks: Int, logger: Logger) {
        self.namespace = namespace; self.cache = cache; self.filler = filler; self.remote = remote; self.bucket = bucket
        self.uid = uid; self.gid = gid; self.ttl = ttl; self.readAheadBlocks = readAheadBlocks; self.logger = logger
    }

    func attributes(_ e: Namespace.Entry) -> FuseAttributes {
        FuseAttributes(ino: e.ino, size: e.object?.size ?? 0, isDirectory: e.isDirectory, links: e.links,
                       mtime: e.mtime, uid: uid, gid: gid)
    }

    /// errno for a failed fill: the one place errors become errno.
    static func errno(for e: FillError) -> Int32 {
        switch e {
        case .changed, .replaced: return ESTALE
        case .deleted: return ENOENT
        case .fetch(let s3) where s3.status == 403: return EACCES
        case .fetch(let s3) where s3.status == 404: return ENOENT
        case .fetch, .evicted, .local: return EIO
        }
    }

    /// errno for a listing that failed with nothing cached to show.
    static func errno(forListing e: Error) -> Int32 {
        (e as? S3Error)?.status == 403 ? EACCES : EIO
    }

    // MARK: - Names

    public func lookup(_ r: FuseRequest, parent: UInt64, name: String) {
        do {
            guard let e = try namespace.lookup(parent: parent, name: name) else { return r.replyNoEntry(ttl: ttl) }
            r.reply(entry: attributes(e), ttl: ttl)
        } catch {
            logger.error("lookup of \(name): \(error)")
            r.reply(error: Self.errno(forListing: error))
        }
    }

    public func getattr(_ r: FuseRequest, ino: UInt64) {
        guard let e = namespace.entry(ino) else { return r.reply(error: ENOENT) }
        r.reply(attr: attributes(e), ttl: ttl)
    }

    public func opendir(_ r: FuseRequest, ino: UInt64) {
        guard let e = namespace.entry(ino) else { return r.reply(error: ENOENT) }
        guard e.isDirectory else { return r.reply(error: ENOTDIR) }
        let c: (dir: Namespace.Entry, parent: Namespace.Entry, children: [Namespace.Entry])?
        do { c = try namespace.contents(ino) } catch {
            logger.error("listing a directory: \(error)")
            return r.reply(error: Self.errno(forListing: error))
        }
        guard let c else { return r.reply(error: ENOTDIR) }
        var entries: [(name: String, attr: FuseAttributes)] = [(".", attributes(c.dir)), ("..", attributes(c.parent))]
        entries.reserveCapacity(c.children.count + 2)
        for child in c.children { entries.append((child.name, attributes(child))) }
        lock.lock()
        let fh = nextFH; nextFH += 1
        directories[fh] = entries
        lock.unlock()
        r.reply(open: fh, keepCache: false)
    }

    public func readdir(_ r: FuseRequest, ino: UInt64, fh: UInt64, size: Int, offset: Int64) {
        lock.lock(); let entries = directories[fh]; lock.unlock()
        guard let entries else { return r.reply(error: EBADF) }
        r.reply(directory: entries, size: size, offset: offset)
    }

    public func releasedir(_ r: FuseRequest, ino: UInt64, fh: UInt64) {
        lock.lock(); directories[fh] = nil; lock.unlock()
        r.reply(error: 0)
    }

    // MARK: - Files

    public func open(_ r: FuseRequest, ino: UInt64, flags: Int32) {
        guard let e = namespace.entry(ino) else { return r.reply(error: ENOENT) }
        guard let o = e.object else { return r.reply(error: EISDIR) }
        if flags & O_ACCMODE != O_RDONLY || flags & (O_TRUNC | O_APPEND) != 0 { return r.reply(error: EROFS) }
        guard let remote, namespace.needsRevalidation(ino) else { return finishOpen(r, ino: ino, o) }
        // After the TTL: ask for the current version (a HEAD) off the FUSE thread.
        replies.async { [self] in
            do {
                guard let current = try remote.current(o), let e = namespace.update(ino, object: current) else {
                    namespace.update(ino, object: nil)
                    return r.reply(error: ENOENT)
                }
                // A new version has a new inode: ESTALE makes the kernel look the name up again
                // (LOOKUP_REVAL) and open that, while files open on the old inode keep the old bytes.
                guard e.ino == ino else { return r.reply(error: ESTALE) }
                finishOpen(r, ino: ino, current)
            } catch {
                logger.warning("could not revalidate \(o.key), opening the cached version: \(error)")
                finishOpen(r, ino: ino, o)
            }
        }
    }

    private func finishOpen(_ r: FuseRequest, ino: UInt64, _ shown: CachedObject) {
        // The index row has the current generation (data dropped since the listing moves it on).
        var o = shown
        if let row = try? cache.index.object(id: shown.id), row.etag == shown.etag { o = row }
        lock.lock()
        let fh = nextFH; nextFH += 1
        handles[fh] = OpenFile(object: o, ino: ino)
        lock.unlock()
        cache.pin(o.id)
        cache.noteAccess(o.id)
        r.reply(open: fh, keepCache: true)  // an inode's bytes never change
        readAheadInDirectory(opened: ino)
    }

    /// If the file before `ino` in its directory was opened recently, the reader is going
    /// through the directory in order: fetch the start of the next files in the read-ahead lane.
    private func readAheadInDirectory(opened ino: UInt64) {
        guard readAheadBlocks > 0, let parent = namespace.entry(ino)?.parent else { return }
        let (previous, next) = namespace.neighbors(ino, following: Self.directoryReadAheadFiles,
                                                   preceding: Self.inOrderRun)
        lock.lock()
        var recent = recentOpens[parent] ?? []
        // The files before it were all opened recently (fewer at the start of a directory).
        let inOrder = !previous.isEmpty && previous.allSatisfy { recent.contains($0) }
        recent.append(ino)
        if recent.count > Self.recentOpensPerDirectory { recent.removeFirst(recent.count - Self.recentOpensPerDirectory) }
        recentOpens[parent] = recent
        if recentOpens.count > 1024 { recentOpens = [parent: recent] }  // bound: directories long done
        // The next files' first blocks, up to `readAheadBlocks` in all (those asked for before
        // count too, so the window slides instead of growing).
        let bs = cache.blockSize
        var ahead: [(object: CachedObject, blocks: Int)] = []
        var budget = readAheadBlocks
        if inOrder {
            for e in next where budget > 0 {
                guard let o = e.object, o.size > 0 else { continue }
                let count = o.blockCount(blockSize: bs)
                let n = BlockRanges.withoutSmallTail(min(count, budget), of: count, window: readAheadBlocks)
                budget -= n
                guard !recentlyAhead.contains(e.ino) else { continue }
                recentlyAhead.append(e.ino)
                ahead.append((o, n))
            }
            if recentlyAhead.count > Self.recentlyAheadLimit { recentlyAhead.removeFirst(recentlyAhead.count - Self.recentlyAheadLimit) }
        }
        lock.unlock()
        for (o, n) in ahead {
            // The index row has the current generation (as in `finishOpen`).
            let row = ((try? cache.index.object(id: o.id)) ?? nil).flatMap { $0.etag == o.etag ? $0 : nil } ?? o
            if row.isComplete {
                // Already cached: start reading its first blocks from disk now, so the reader's
                // first requests there do not wait on the disk.
                guard let fd = (try? cache.openData(row)) ?? nil else { continue }
                _ = posix_fadvise(fd, 0, off_t(Int64(n) * bs), POSIX_FADV_WILLNEED)
                close(fd)
            } else {
                // Blocks present or already on their way are not fetched again (`CacheFiller`).
                filler.fill(row, bucket: bucket, blocks: Array(0..<n), lane: .readAhead, runBlocks: readAheadRun) { _, _ in }
            }
        }
    }

    public func release(_ r: FuseRequest, ino: UInt64, fh: UInt64) {
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
        r.reply(error: 0)
    }

    /// The open file's object and data-file descriptor (opened on first use), held until
    /// `endUse`; nil fd if the object has no data file yet.
    private func beginUse(_ fh: UInt64) -> (OpenFile, Int32)? {
        lock.lock()
        guard let h = handles[fh] else { lock.unlock(); return nil }
        h.users += 1
        var fd = h.fd
        let o = h.object
        lock.unlock()
        if fd < 0, let opened = try? cache.openData(o) {
            lock.lock()
            if h.fd < 0 && h.object.gen == o.gen { h.fd = opened; fd = opened } else { close(opened); fd = h.fd }
            lock.unlock()
        }
        return (h, fd)
    }

    private func endUse(_ h: OpenFile) {
        lock.lock()
        h.users -= 1
        var fd: Int32 = -1
        if h.released && h.users == 0 { fd = h.fd; h.fd = -1 }
        lock.unlock()
        if fd >= 0 { close(fd) }
    }

    public func read(_ r: FuseRequest, ino: UInt64, fh: UInt64, size: Int, offset: Int64) {
        guard let (h, fd) = beginUse(fh) else { return r.reply(error: EBADF) }
        defer { endUse(h) }
        let o = h.object
        guard offset < o.size, size > 0 else { return r.reply(data: UnsafeRawBufferPointer(start: nil, count: 0)) }
        let count = Int(min(Int64(size), o.size - offset))
        let t0 = MonotonicTime.now()
        let ahead = readAheadWindow(h, offset: offset, count: count)
        if fd >= 0 {
            do {
                let served = try buffers.with(count) { buf -> Int? in
                    guard let n = try cache.read(o, offset: offset, into: buf, fd: fd) else { return nil }
                    r.reply(data: UnsafeRawBufferPointer(rebasing: buf[0..<n]))
                    return n
                }
                if let served {
                    if let ahead {
                        filler.fill(o, bucket: bucket, blocks: Array(ahead), lane: .readAhead, runBlocks: readAheadRun) { _, _ in }
                    }
                    record(hit: true)
                    readObserver?(MonotonicTime.now() - t0, true, served)
                    return
                }
            } catch {
                logger.error("read \(o.key) at \(offset): \(error)")
                return r.reply(error: EIO)
            }
        }
        record(hit: false)
        miss(r, h, offset: offset, count: count, ahead: ahead, t0: t0)
    }

    /// Fetches the blocks under a read urgently and replies when they land (or fail, or the
    /// deadline passes).
    private func miss(_ r: FuseRequest, _ h: OpenFile, offset: Int64, count: Int, ahead: ClosedRange<Int>?, t0: Double) {
        let o = h.object
        let bs = cache.blockSize
        let blocks = Array(o.blocks(blockSize: bs).blocks(offset: offset, count: count))
        if let ahead {
            // One request for the read's blocks and the window after them (urgent: the reader is
            // waiting on its start); the reply below waits only for the read's own blocks.
            filler.fill(o, bucket: bucket, blocks: blocks + Array(ahead), lane: .urgent, runBlocks: readAheadRun) { _, _ in }
        }
        let once = OnceReply(r)
        // A reader stuck in the kernel is the worst failure a mount has: whatever happens to
        // the fetch, the read is answered (EIO) after `missDeadline`.
        replies.asyncAfter(deadline: .now() + Self.missDeadline) { [logger] in
            if once.reply({ $0.reply(error: EIO) }) {
                logger.error("read \(o.key) at \(offset) got no data within \(Int(Self.missDeadline)) s; answered EIO")
            }
        }
        let ino = h.ino
        filler.fill(o, bucket: bucket, blocks: blocks, lane: .urgent, whenLanded: true) { [self] _, err in
            let landed = MonotonicTime.now()
            if let err {
                logger.warning("read \(PathError.printable(o.key)) at \(offset) failed: \(err)")
                var e = Self.errno(for: err)
                // Blocks refused because this version's data was dropped meanwhile (the object
                // changed under another fetch of it): the same as a 412 here.
                if case .evicted = err, versionDropped(o) { e = ESTALE }
                if e == ESTALE { namespace.markStale(ino) }  // the next open sees the new version
                _ = once.reply { $0.reply(error: e) }
                return
            }
            // Off the committer thread: the pread and reply, through a descriptor of its own
            // (the open file may be released meanwhile).
            replies.async { [self] in
                var n: Int? = nil
                let fd = (try? cache.openData(o)) ?? nil
                _ = try? buffers.with(count) { buf in
                    if let fd { n = try? cache.read(o, offset: offset, into: buf, fd: fd) }
                    // nil: this version's data went meanwhile. Dropped because the object changed
                    // (a 412 on another fetch of it: its generation moved on): ESTALE, and the
                    // next open sees the new version. Otherwise evicted or corrupt again at once:
                    // EIO, and the reader may retry.
                    var err = EIO
                    if n == nil, versionDropped(o) {
                        err = ESTALE
                        namespace.markStale(ino)
                    }
                    _ = once.reply { r in
                        if let n { r.reply(data: UnsafeRawBufferPointer(rebasing: buf[0..<n])) } else { r.reply(error: err) }
                    }
                }
                if let fd { close(fd) }
                let end = MonotonicTime.now()
                logger.debug("miss \(PathError.printable(o.key)) at \(offset): \(Int((end - t0) * 1000)) ms (blocks landed after \(Int((landed - t0) * 1000)) ms)")
                readObserver?(end - t0, false, n ?? 0)
            }
        }
    }

    /// Whether the data of `o`'s version is gone from the index (its row replaced, or moved to a
    /// new generation): what an open file sees when the object changed under another fetch.
    private func versionDropped(_ o: CachedObject) -> Bool {
        (try? cache.index.object(id: o.id)).map { $0?.gen != o.gen } ?? false
    }

    /// A reader continuing where its last read ended (or starting a file with a large read) is
    /// sequential: it should have the next `readAheadBlocks` blocks on their way. Returns the
    /// blocks to ask for now, if the window has drained to half (nil otherwise), and notes them.
    private func readAheadWindow(_ h: OpenFile, offset: Int64, count: Int) -> ClosedRange<Int>? {
        guard readAheadBlocks > 0 else { return nil }
        let bs = cache.blockSize
        lock.lock(); defer { lock.unlock() }
        let blocks = h.object.blocks(blockSize: bs)
        let block = blocks.blocks(offset: offset, count: count).upperBound
        let sequential = offset == h.nextOffset && (offset > 0 || count >= Self.sequentialStartBytes)
        h.nextOffset = offset + Int64(count)
        guard sequential, let window = blocks.readAhead(after: block, requestedUpTo: h.readAheadUpTo,
                                                        window: readAheadBlocks, refill: Self.refillFraction) else { return nil }
        h.readAheadUpTo = window.upperBound
        return window
    }

    public func statfs(_ r: FuseRequest) {
        let t = namespace.totals
        r.reply(statfs: UInt64((t.bytes + (1 << 20) - 1) >> 20), files: UInt64(t.inodes))
    }

    private func record(hit: Bool) {
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
        if h > 0 { try? cache.index.count("hits", h) }
        if m > 0 { try? cache.index.count("misses", m) }
        try? cache.flushAccess()
    }
}
