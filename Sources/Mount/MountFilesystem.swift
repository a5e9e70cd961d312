/// The read-only file system the mount serves: answers FUSE requests from the namespace (built
/// from the listing in the cache index) and the block cache.
///
/// Read path: a hit is answered on the FUSE thread (index lookup, `pread`, reply). A miss asks
/// `CacheFiller` for the blocks under the read in the **urgent** lane, which overtakes queued
/// prefetch work and joins a fetch already under way instead of starting another; the reply is
/// sent when the blocks are recorded. Errors map to errno in `errno(for:)`, the one place.
import Cache
import Foundation
import Logging
import Prefetcher
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
    // @unchecked: the namespace is immutable; counters and open handles are guarded by `lock`.
    let namespace: Namespace
    let cache: DiskCache
    let filler: CacheFiller
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
    /// Open files: object (pinned while open) and where the last read ended, to spot
    /// sequential readers.
    private struct Handle { var objectID: Int64; var nextOffset: Int64 = 0; var readAheadUpTo = -1 }
    private var handles: [UInt64: Handle] = [:]
    /// Blocks fetched ahead of a sequential reader (`--read-ahead`, in MiB = blocks).
    let readAheadBlocks: Int
    /// Called with each read's latency (seconds) and whether it was a hit (for metrics).
    public var readObserver: (@Sendable (Double, Bool) -> Void)?
    /// Read-ahead goes out in fetches of this many blocks, in parallel over several connections.
    static let readAheadRunBlocks = 2
    private let replies = DispatchQueue(label: "soak.mount.replies", attributes: .concurrent)

    public init(namespace: Namespace, cache: DiskCache, filler: CacheFiller, bucket: String, uid: UInt32, gid: UInt32,
                ttl: Double, readAheadBlocks: Int, logger: Logger) {
        self.namespace = namespace; self.cache = cache; self.filler = filler; self.bucket = bucket
        self.uid = uid; self.gid = gid; self.ttl = ttl; self.readAheadBlocks = readAheadBlocks; self.logger = logger
    }

    func attributes(_ n: Namespace.Node) -> FuseAttributes {
        FuseAttributes(ino: n.ino, size: n.object?.size ?? 0, isDirectory: n.isDirectory,
                       links: n.isDirectory ? 2 + n.subdirectories : 1, mtime: n.mtime, uid: uid, gid: gid)
    }

    /// errno for a failed fill: the one place errors become errno.
    static func errno(for e: FillError) -> Int32 {
        switch e {
        case .changed: return ESTALE
        case .fetch(let s3) where s3.status == 403: return EACCES
        case .fetch(let s3) where s3.status == 404: return ENOENT
        case .fetch, .evicted, .local: return EIO
        }
    }

    public func lookup(_ r: FuseRequest, parent: UInt64, name: String) {
        guard let n = namespace.lookup(parent: parent, name: name) else { return r.replyNoEntry(ttl: ttl) }
        r.reply(entry: attributes(n), ttl: ttl)
    }

    public func getattr(_ r: FuseRequest, ino: UInt64) {
        guard let n = namespace.node(ino) else { return r.reply(error: ENOENT) }
        r.reply(attr: attributes(n), ttl: ttl)
    }

    public func opendir(_ r: FuseRequest, ino: UInt64) {
        guard let n = namespace.node(ino) else { return r.reply(error: ENOENT) }
        guard n.isDirectory else { return r.reply(error: ENOTDIR) }
        r.reply(open: 0, keepCache: true)
    }

    public func readdir(_ r: FuseRequest, ino: UInt64, size: Int, offset: Int64) {
        guard let n = namespace.node(ino), n.isDirectory else { return r.reply(error: ENOTDIR) }
        var entries: [(name: String, attr: FuseAttributes)] = [(".", attributes(n))]
        entries.append(("..", attributes(namespace.node(n.parent) ?? n)))
        for c in n.ordered { if let child = namespace.node(c) { entries.append((child.name, attributes(child))) } }
        r.reply(directory: entries, size: size, offset: offset)
    }

    public func open(_ r: FuseRequest, ino: UInt64, flags: Int32) {
        guard let n = namespace.node(ino) else { return r.reply(error: ENOENT) }
        guard let o = n.object else { return r.reply(error: EISDIR) }
        if flags & O_ACCMODE != O_RDONLY || flags & (O_TRUNC | O_APPEND) != 0 { return r.reply(error: EROFS) }
        lock.lock()
        let fh = nextFH; nextFH += 1
        handles[fh] = Handle(objectID: o.id)
        lock.unlock()
        cache.pin(o.id)
        r.reply(open: fh, keepCache: true)
    }

    public func release(_ r: FuseRequest, ino: UInt64, fh: UInt64) {
        lock.lock(); let h = handles.removeValue(forKey: fh); lock.unlock()
        if let h { cache.unpin(h.objectID) }
        r.reply(error: 0)
    }

    public func read(_ r: FuseRequest, ino: UInt64, fh: UInt64, size: Int, offset: Int64) {
        guard let n = namespace.node(ino), let o = n.object else { return r.reply(error: EISDIR) }
        guard offset < o.size, size > 0 else { return r.reply(data: UnsafeRawBufferPointer(start: nil, count: 0)) }
        let count = Int(min(Int64(size), o.size - offset))
        logger.trace("read \(o.key) at \(offset) for \(size) bytes")
        let t0 = MonotonicTime.now()
        readAhead(fh: fh, o, offset: offset, count: count)
        do {
            if let bytes = try cache.read(o, offset: offset, count: count) {
                record(hit: true)
                bytes.withUnsafeBytes { r.reply(data: $0) }
                readObserver?(MonotonicTime.now() - t0, true)
                return
            }
        } catch {
            logger.error("read \(o.key) at \(offset): \(error)")
            return r.reply(error: EIO)
        }
        record(hit: false)
        let bs = cache.blockSize
        let blocks = Array(Int(offset / bs)...Int((offset + Int64(count) - 1) / bs))
        let once = OnceReply(r)
        // A reader stuck in the kernel is the worst failure a mount has: whatever happens to
        // the fetch, the read is answered (EIO) after `missDeadline`.
        replies.asyncAfter(deadline: .now() + Self.missDeadline) { [logger] in
            if once.reply({ $0.reply(error: EIO) }) {
                logger.error("read \(o.key) at \(offset) got no data within \(Int(Self.missDeadline)) s; answered EIO")
            }
        }
        filler.fill(o, bucket: bucket, blocks: blocks, lane: .urgent, whenLanded: true) { [self] _, err in
            if let err {
                logger.warning("read \(o.key) at \(offset) failed: \(err)")
                _ = once.reply { $0.reply(error: Self.errno(for: err)) }
                return
            }
            // Off the committer thread: the pread and reply.
            replies.async { [self] in
                let bytes = try? cache.read(o, offset: offset, count: count)
                _ = once.reply { r in
                    // nil: evicted or corrupt again at once; the reader may retry.
                    if let bytes { bytes.withUnsafeBytes { r.reply(data: $0) } } else { r.reply(error: EIO) }
                }
                readObserver?(MonotonicTime.now() - t0, false)
            }
        }
    }

    /// A reader continuing where its last read ended gets the next `readAheadBlocks` blocks
    /// fetched in the read-ahead lane (behind mount misses, ahead of prefetch), once per block.
    private func readAhead(fh: UInt64, _ o: CachedObject, offset: Int64, count: Int) {
        guard readAheadBlocks > 0 else { return }
        let bs = cache.blockSize
        let block = Int((offset + Int64(count) - 1) / bs)
        lock.lock()
        guard var h = handles[fh] else { lock.unlock(); return }
        let sequential = offset == h.nextOffset && offset > 0
        h.nextOffset = offset + Int64(count)
        let last = min(o.blockCount(blockSize: bs) - 1, block + readAheadBlocks)
        let from = max(block + 1, h.readAheadUpTo + 1)
        let go = sequential && from <= last
        if go { h.readAheadUpTo = last }
        handles[fh] = h
        lock.unlock()
        if go {
            filler.fill(o, bucket: bucket, blocks: Array(from...last), lane: .readAhead, runBlocks: Self.readAheadRunBlocks) { _, _ in }
        }
    }

    public func statfs(_ r: FuseRequest) {
        r.reply(statfs: UInt64((namespace.totalBytes + (1 << 20) - 1) >> 20), files: UInt64(namespace.count))
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

    /// Adds the hits and misses since the last call to the index's counters.
    public func flushCounters() {
        lock.lock(); let h = hits, m = misses; hits = 0; misses = 0; lock.unlock()
        if h > 0 { try? cache.index.count("hits", h) }
        if m > 0 { try? cache.index.count("misses", m) }
    }
}
