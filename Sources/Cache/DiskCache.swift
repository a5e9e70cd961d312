/// A cache directory: sparse data files plus the SQLite index (`CacheIndex`), see `CacheFormat`.
///
/// How a block becomes present: a worker `pwrite`s it into the object's data file and reports
/// its CRC32C; `commit` makes the file system durable (`syncfs`, one call for any number of
/// files) and only then records the block in the index. A crash at any point leaves the index
/// claiming only bytes that are on disk. A block is checked against its CRC the first time this
/// process serves it (unless this process wrote it), and by `verify`; a bad block is dropped and
/// fetched again, never served.
///
/// Capacity: after each commit, whole objects are evicted least-recently-used first until the
/// cached bytes fit the cap (and the file system keeps `minFreeFraction` free); pinned objects
/// are skipped. Bytes still in flight are the only overshoot.
import CSys
import Foundation
import Logging
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public final class DiskCache: Sendable {
    public let directory: String
    public let index: CacheIndex
    public let blockSize = CacheFormat.blockSize
    public let capacity: CacheCapacity
    /// Eviction also starts when the cache's file system has less than this fraction free.
    public static let minFreeFraction = 0.05
    private let dirFD: Int32
    private let logger: Logger
    /// What this process knows beyond the index (the index locks itself).
    private struct State {
        var pins: [Int64: Int] = [:]
        /// Objects used since the last `flushAccess`.
        var accessed = Set<Int64>()
        /// Blocks this process wrote or checked, by object: served without re-checking their CRC
        /// or asking the index (the hit path's fast case). Only for the generation named.
        var trusted: [Int64: (gen: Int64, blocks: Set<Int>)] = [:]
        /// Blocks a worker of this process wrote that are not yet recorded (the next commit
        /// will): servable at once, so a mount read need not wait for the sync. Object id →
        /// gen, index → CRC.
        var landed: [Int64: (gen: Int64, blocks: [Int: UInt32])] = [:]
        /// Runs in `read` between its lookup of landed blocks and its index query (tests commit
        /// there).
        var betweenLookups: (@Sendable () -> Void)?

        /// The landed blocks of `o`'s generation.
        func landed(_ o: CachedObject) -> [Int: UInt32] {
            guard let l = landed[o.id], l.gen == o.gen else { return [:] }
            return l.blocks
        }

        mutating func trust(_ id: Int64, gen: Int64, _ i: Int) {
            if trusted[id]?.gen != gen { trusted[id] = (gen, []) }
            trusted[id]!.blocks.insert(i)
        }
    }
    private let state = Mutex(State())

    struct BlockRef: Hashable { var object: Int64; var gen: Int64; var index: Int }

    /// The default cache directory: `$CACHE_DIRECTORY` (systemd's `CacheDirectory=`; of several
    /// colon-separated paths, the first), else `$XDG_CACHE_HOME/soak`, else `$HOME/.cache/soak`.
    /// Relative values are ignored, as the XDG specification asks.
    public static func defaultDirectory(environment env: [String: String]) -> String {
        if let s = env["CACHE_DIRECTORY"], let first = s.split(separator: ":", omittingEmptySubsequences: false).first,
           first.hasPrefix("/") { return String(first) }
        if let x = env["XDG_CACHE_HOME"], x.hasPrefix("/") { return x + "/soak" }
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.cache/soak"
    }

    /// Opens a cache directory and checks its format version. `create`: a missing or empty
    /// directory is made a cache (for commands that fill it); without it only an existing soak
    /// cache is opened. Either way a directory that is not soak's is refused before anything in
    /// it is created or opened (`CacheDirectory`).
    public init(directory: String, capacity: CacheCapacity = .unlimited, create: Bool = true,
                logger: Logger = Logger(label: "soak.cache")) throws {
        self.directory = directory
        self.capacity = capacity
        self.logger = logger
        if create { try CacheDirectory.prepare(directory) } else { try CacheDirectory.requireExisting(directory) }
        try Self.makeDirectory(directory, mode: 0o700)
        try Self.makeDirectory(directory + "/data", mode: 0o700)
        index = try CacheIndex(path: directory + "/index.db")
        switch try index.prepareFormat() {
        case .created, .current: break
        case .migrated(let v):
            logger.info("cache \(directory): index migrated from format version \(v) to \(CacheFormat.version)")
        case .newer(let v):
            throw CacheError.newerFormat(directory: directory, found: v, supported: CacheFormat.version)
        case .foreign:
            throw CacheError.notACache(directory: directory, reason: "its index.db is not a soak cache index")
        case .older(let v):
            logger.warning("cache \(directory) has old format version \(v); rebuilding it empty")
            try index.reset()
            try Self.removeDataFiles(directory + "/data")
        }
        // The marker names the format the index now has (it was older before a migration).
        if try CacheDirectory.readMarker(directory) != CacheFormat.version { try CacheDirectory.mark(directory) }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CacheError.unusableDirectory(LocalIOError(errno: errno, operation: "open", path: directory)) }
        dirFD = fd
    }

    deinit { close(dirFD) }

    private static func makeDirectory(_ path: String, mode: mode_t) throws {
        if mkdir(path, mode) == 0 { return }
        let e = errno
        var st = stat()
        guard e == EEXIST, stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CacheError.unusableDirectory(LocalIOError(errno: e == EEXIST ? ENOTDIR : e, operation: "mkdir", path: path))
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw CacheError.unusableDirectory(LocalIOError(errno: errno, operation: "not writable:", path: path))
        }
    }

    // MARK: - Data files

    /// The data file of an object version (it may not exist yet: workers create it).
    public func dataPath(_ o: CachedObject) -> String { dataPath(id: o.id, gen: o.gen) }

    /// Whether `name` is one `dataPath(id:gen:)` makes, spelled exactly so: the only names in
    /// `data/` that soak ever removes.
    static func isDataFileName(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let id = Int64(parts[0]), let gen = Int64(parts[1]), id >= 0, gen >= 0 else { return false }
        return name == "\(id).\(gen)"
    }

    /// One flat directory: ext4 and XFS index large directories, and spreading files over
    /// hashed subdirectories put every create in a different inode group, which cost kernel
    /// time (docs/BENCHMARKS.md, cache index and data files).
    public func dataPath(id: Int64, gen: Int64) -> String {
        "\(directory)/data/\(id).\(gen)"
    }

    private func unlinkData(_ d: CacheIndex.DroppedData) {
        unlink(dataPath(id: d.id, gen: d.gen))
        state.withLock { s in
            if s.trusted[d.id]?.gen == d.gen { s.trusted[d.id] = nil }
            s.landed[d.id] = nil
        }
    }

    /// Blocks whose bytes a worker of this process just wrote: readable before they are recorded.
    public func noteLanded(_ blocks: [CacheIndex.LandedBlock]) {
        state.withLock { s in
            for b in blocks {
                if s.landed[b.objectID]?.gen != b.gen { s.landed[b.objectID] = (b.gen, [:]) }
                s.landed[b.objectID]!.blocks[b.index] = b.crc
            }
        }
    }

    /// Landed, not yet recorded blocks of an object version.
    public func landedBlocks(_ o: CachedObject) -> [Int: UInt32] {
        state.withLock { $0.landed(o) }
    }

    private func forgetLanded(_ blocks: [CacheIndex.LandedBlock]) {
        state.withLock { s in
            for b in blocks where s.landed[b.objectID]?.gen == b.gen {
                s.landed[b.objectID]!.blocks[b.index] = nil
                if s.landed[b.objectID]!.blocks.isEmpty { s.landed[b.objectID] = nil }
            }
        }
    }

    /// Unlinks the files of dropped rows (from listings that replaced or removed objects).
    public func discard(_ dropped: [CacheIndex.DroppedData]) { for d in dropped { unlinkData(d) } }

    // MARK: - Filling

    /// Makes landed blocks durable and records them; then keeps the cache under its cap.
    /// Returns the blocks the index accepted (a block of an evicted or replaced version is not).
    @discardableResult
    public func commit(_ blocks: [CacheIndex.LandedBlock]) throws -> [CacheIndex.LandedBlock] {
        guard !blocks.isEmpty else { return [] }
        let t0 = MonotonicTime.now()
        if csys_syncfs(dirFD) != 0 {
            throw CacheError.unusableDirectory(LocalIOError(errno: errno, operation: "syncfs", path: directory))
        }
        logger.trace("syncfs took \(Int((MonotonicTime.now() - t0) * 1000)) ms")
        let accepted = try index.commit(blocks, now: Self.now())
        state.withLock { s in for b in accepted { s.trust(b.objectID, gen: b.gen, b.index) } }
        forgetLanded(blocks)
        if accepted.count < blocks.count {
            // Their bytes went to a file of a generation that is gone: remove it if still named.
            let live = Set(accepted.map { BlockRef(object: $0.objectID, gen: $0.gen, index: $0.index) })
            var stale = Set<String>()
            for b in blocks where !live.contains(BlockRef(object: b.objectID, gen: b.gen, index: b.index)) {
                if let cur = try index.object(id: b.objectID), cur.gen == b.gen { continue }  // duplicate, fine
                stale.insert(dataPath(id: b.objectID, gen: b.gen))
            }
            for p in stale { unlink(p) }
        }
        _ = try enforceCapacity()
        return accepted
    }

    /// Drops every block of an object version (a 412, a failed MD5, corruption): the next read
    /// fetches it again into a new generation's file.
    public func dropData(_ o: CachedObject, evicted: Bool = false) throws {
        if let d = try index.dropData(objectID: o.id, expectedGen: o.gen, evicted: evicted) { unlinkData(d) }
    }

    /// Notes that an object was used (a mount open): `flushAccess` moves it up the LRU order.
    public func noteAccess(_ id: Int64) { state.withLock { _ = $0.accessed.insert(id) } }

    /// Records the uses noted since the last call, in one index transaction.
    public func flushAccess() throws {
        let ids = state.withLock { s in defer { s.accessed.removeAll() }; return s.accessed }
        try index.touch(objectIDs: Array(ids), now: Self.now())
    }

    // MARK: - Capacity

    public func pin(_ id: Int64) { state.withLock { $0.pins[id, default: 0] += 1 } }
    public func unpin(_ id: Int64) {
        state.withLock { s in if let n = s.pins[id] { s.pins[id] = n > 1 ? n - 1 : nil } }
    }

    /// The cap in bytes now: the configured cap, lowered so the file system keeps
    /// `minFreeFraction` free. nil when neither limits.
    public func effectiveCap(cachedBytes: Int64) -> Int64? {
        var vfs = statvfs()
        guard fstatvfs(dirFD, &vfs) == 0 else { return capacity.bytes(filesystemBytes: 0) }
        let total = Int64(vfs.f_blocks) * Int64(vfs.f_frsize)
        let free = Int64(vfs.f_bavail) * Int64(vfs.f_frsize)
        var cap = capacity.bytes(filesystemBytes: total)
        let reserve = Int64(Double(total) * Self.minFreeFraction)
        if free < reserve { cap = min(cap ?? .max, max(0, cachedBytes - (reserve - free))) }
        return cap
    }

    /// Evicts least-recently-used unpinned objects until the cache fits. Returns bytes evicted.
    @discardableResult
    public func enforceCapacity() throws -> Int64 {
        var total = try index.counter("bytes")
        guard let cap = effectiveCap(cachedBytes: total), total > cap else { return 0 }
        var evicted: Int64 = 0
        var skip = Set<Int64>()
        while total > cap {
            let batch = try index.lruObjects(limit: 64 + skip.count)
            let pinned = state.withLock { Set($0.pins.keys) }
            let candidates = batch.filter { !pinned.contains($0.id) && !skip.contains($0.id) }
            if candidates.isEmpty { break }
            for o in candidates where total > cap {
                if let d = try index.dropData(objectID: o.id, expectedGen: o.gen, evicted: true) {
                    unlinkData(d)
                    total -= d.bytes
                    evicted += d.bytes
                } else {
                    skip.insert(o.id)
                }
            }
        }
        if evicted > 0 { logger.debug("evicted \(evicted) bytes to stay under the cache cap") }
        return evicted
    }

    // MARK: - Reading

    /// Bytes `[offset, offset+count)` of an object version if every block is present (checking
    /// blocks this process has not seen yet against their CRC), else nil: a miss, or a corrupt
    /// block that was just dropped.
    public func read(_ o: CachedObject, offset: Int64, count: Int) throws -> [UInt8]? {
        guard count > 0, offset < o.size else { return [] }
        guard let fd = try openData(o) else { return nil }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: Int(min(o.size - offset, Int64(count))))
        let n = try out.withUnsafeMutableBytes { try read(o, offset: offset, into: $0, fd: fd) }
        return n == out.count ? out : nil
    }

    /// Opens an object version's data file for reading; nil if it has none. A file the index
    /// claims blocks of but that is gone has its blocks dropped (they are not there).
    public func openData(_ o: CachedObject) throws -> Int32? {
        let fd = open(dataPath(o), O_RDONLY | O_CLOEXEC)
        if fd >= 0 { return fd }
        guard errno == ENOENT else { throw LocalIOError(errno: errno, operation: "open", path: dataPath(o)) }
        let current = try index.object(id: o.id)
        if !landedBlocks(o).isEmpty || (current.map { $0.gen == o.gen && $0.cachedBytes > 0 } ?? false) {
            try dropData(o)
        }
        return nil
    }

    /// The mount's hit path: reads `buf.count` bytes of `o` at `offset` through `fd` (its open
    /// data file) if every block under them is present, else nil (a miss, or a corrupt block
    /// that was just dropped). Blocks this process trusts need no index query at all.
    public func read(_ o: CachedObject, offset: Int64, into buf: UnsafeMutableRawBufferPointer, fd: Int32) throws -> Int? {
        let count = Int(min(Int64(buf.count), o.size - offset))
        guard count > 0 else { return 0 }
        let span = o.blocks(blockSize: blockSize).blocks(offset: offset, count: count)
        let first = span.lowerBound, last = span.upperBound
        if !isTrusted(o, first...last) {
            // Landed blocks first, the index second: a commit records a block in the index before
            // it forgets that it landed, so a block that landed before this read is found in one
            // or the other. (The other order missed it in both when a commit ran in between.)
            let (landedNow, hook) = state.withLock { ($0.landed(o), $0.betweenLookups) }
            hook?()
            // A dropped generation is never served, not even blocks that landed for it: a late
            // fetch may have made a new file under its name that `fd` does not see.
            guard var present = try index.presentBlocksIfCurrent(objectID: o.id, gen: o.gen, in: first...last) else {
                return nil
            }
            for (i, crc) in landedNow where present[i] == nil && (first...last).contains(i) {
                present[i] = crc
                trust(o, i)  // written by this process's worker, CRC computed as it streamed
            }
            guard (first...last).allSatisfy({ present[$0] != nil }) else { return nil }
            var bad: [Int] = []
            for i in first...last where !isTrusted(o, i...i) {
                if try checkBlock(fd: fd, o, i, crc: present[i]!) { trust(o, i) } else { bad.append(i) }
            }
            if !bad.isEmpty {
                logger.warning("cache block(s) \(bad) of \(o.key) failed their checksum; dropped, will fetch again")
                _ = try index.dropBlocks(objectID: o.id, indices: bad) { o.blockRange($0, blockSize: blockSize).count64 }
                return nil
            }
        }
        let n = try Syscall.preadAll(fd, into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<count]), at: offset, path: dataPath(o))
        return n == count ? n : nil
    }

    /// Sets the hook `read` runs between its two lookups (for tests).
    func runBetweenReadLookups(_ hook: (@Sendable () -> Void)?) { state.withLock { $0.betweenLookups = hook } }

    private func isTrusted(_ o: CachedObject, _ r: ClosedRange<Int>) -> Bool {
        state.withLock { s in
            guard let t = s.trusted[o.id], t.gen == o.gen else { return false }
            return r.allSatisfy { t.blocks.contains($0) }
        }
    }
    private func trust(_ o: CachedObject, _ i: Int) {
        state.withLock { $0.trust(o.id, gen: o.gen, i) }
    }

    /// Reads block `i` and compares its CRC32C.
    func checkBlock(fd: Int32, _ o: CachedObject, _ i: Int, crc: UInt32) throws -> Bool {
        let r = o.blockRange(i, blockSize: blockSize)
        var buf = [UInt8](repeating: 0, count: Int(r.count64))
        let n = try buf.withUnsafeMutableBytes { try Syscall.preadAll(fd, into: $0, at: r.lowerBound, path: dataPath(o)) }
        return n == buf.count && CRC32C.checksum(buf) == crc
    }

    // MARK: - Administration

    /// Checks every present block against its CRC; drops the bad ones (they are fetched again
    /// on next use) and removes data files no row owns.
    public func verify(progress: (VerifyReport) -> Void = { _ in }) throws -> VerifyReport {
        var report = VerifyReport()
        var after: Int64 = 0
        while true {
            let batch = try index.objectsWithData(afterID: after, limit: 256)
            if batch.isEmpty { break }
            for o in batch {
                after = o.id
                report.objects += 1
                let present = try index.presentBlocks(objectID: o.id)
                let path = dataPath(o)
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                if fd < 0 {
                    report.missingFiles += 1
                    report.corruptBlocks += present.count
                    do { try dropData(o) } catch { report.unrepaired.append("\(o.key): \(error)") }
                    continue
                }
                var bad: [Int] = []
                for (i, crc) in present.sorted(by: { $0.key < $1.key }) {
                    report.blocksChecked += 1
                    report.bytesChecked += o.blockRange(i, blockSize: blockSize).count64
                    if try checkBlock(fd: fd, o, i, crc: crc) { trust(o, i) } else { bad.append(i) }
                }
                close(fd)
                if !bad.isEmpty {
                    report.corruptBlocks += bad.count
                    logger.warning("\(o.key): block(s) \(bad) failed their checksum; dropped")
                    do {
                        _ = try index.dropBlocks(objectID: o.id, indices: bad) { o.blockRange($0, blockSize: blockSize).count64 }
                    } catch { report.unrepaired.append("\(o.key): \(error)") }
                }
            }
            progress(report)
        }
        report.orphanFiles = try removeOrphans()
        return report
    }

    /// Data files whose (id, gen) no row owns: left by a crash between an index change and the
    /// unlink, or by a fetch that landed after its object was evicted. Names soak does not make
    /// are left alone.
    func removeOrphans() throws -> Int {
        let live = try index.liveDataFiles()
        var removed = 0
        let dir = directory + "/data"
        for n in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where Self.isDataFileName(n) && !live.contains(n) {
            if unlink(dir + "/" + n) == 0 { removed += 1 }
        }
        return removed
    }

    /// Drops the data of every object under `bucket`/`prefix` (their listing rows stay).
    public func evict(bucket: String?, prefix: String) throws -> (objects: Int, bytes: Int64) {
        var n = 0
        var bytes: Int64 = 0
        for id in try index.objectIDs(bucket: bucket, prefix: prefix) {
            guard let o = try index.object(id: id), let d = try index.dropData(objectID: id, expectedGen: o.gen, evicted: true)
            else { continue }
            unlinkData(d)
            n += 1
            bytes += d.bytes
        }
        return (n, bytes)
    }

    /// Empties the cache: every row and every data file.
    public func clear() throws {
        try index.reset()
        try Self.removeDataFiles(directory + "/data")
        state.withLock { $0.trusted.removeAll() }
    }

    /// Removes every data file (by the names soak makes; anything else in `data/` stays).
    private static func removeDataFiles(_ data: String) throws {
        for n in (try? FileManager.default.contentsOfDirectory(atPath: data)) ?? [] where isDataFileName(n) {
            unlink(data + "/" + n)
        }
    }

    public func stats() throws -> CacheStats {
        let t = try index.totals()
        let bytes = try index.counter("bytes")
        return CacheStats(directory: directory, formatVersion: CacheFormat.version, blockSize: blockSize,
                          objects: t.objects, objectsWithData: t.withData, completeObjects: t.complete,
                          blocks: t.blocks, bytes: bytes, capBytes: effectiveCap(cachedBytes: bytes),
                          hits: try index.counter("hits"), misses: try index.counter("misses"),
                          evictedBytes: try index.counter("evicted"), indexBytes: index.fileBytes())
    }

    /// Milliseconds since 1970: LRU and listing times.
    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

extension ClosedRange where Bound == Int64 {
    public var count64: Int64 { upperBound - lowerBound + 1 }
}
