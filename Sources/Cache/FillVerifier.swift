/// The fill's integrity checks (see `CacheFiller`): complete single-part objects hashed against
/// their ETag's MD5, before the commit that records them (`prehash`, while it syncs) or after
/// it (`verifyWhenComplete`). A mismatch drops the data and fills the object again for the
/// requests waiting on the check; a second one means the ETag is not an MD5.
import Engine
import Foundation
import Logging
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class FillVerifier: Sendable {
    /// A request answered after its object's MD5 check.
    struct Waiter {
        var bucket: String
        var done: CacheFiller.Done
    }

    /// Threads hashing complete objects against their ETag in a prewarm. One: it hashes up to
    /// sixteen objects side by side (`FileMD5`), and a second thread
    /// only split the batches.
    static let md5Threads = 1
    /// How long a complete object waits for others to be hashed alongside it while fetches are
    /// under way. Without it a prewarm of d/ mostly hashed one object at a time (objects complete
    /// one by one), at one stream's speed.
    static let md5GatherWait = 0.05
    /// Bound on hashes kept for checks that never come (objects evicted before their commit).
    static let maxPrehashed = 10_000

    /// Everything the checks track, behind their one lock.
    struct State {
        /// Objects whose MD5 mismatched once in this process (a second time means: not an MD5).
        var strikes = Set<Int64>()
        /// Complete objects waiting for their check.
        var pending: [CachedObject] = []
        /// Requests answered once their object's check is done.
        var waiters: [Int64: [Waiter]] = [:]
        /// Whole objects a commit is about to record, to be hashed while it syncs.
        var prehashPending: [CachedObject] = []
        /// MD5s of whole objects hashed before their commit, by object ID, taken by the check
        /// after it; dropped when there are `maxPrehashed`.
        var prehashed: [Int64: (gen: Int64, md5: String)] = [:]
        /// Objects queued for hashing before their commit so far (tests hold a commit until
        /// they are hashed).
        var prehashQueued = 0
        /// Objects hashed from their files so far (for tests).
        var hashed = 0
        var nextQueue = 0
    }

    private let state = Mutex(State())
    private let cache: DiskCache
    private let scheduler: FillScheduler
    private let logger: Logger
    /// Check whole single-part objects against their ETag's MD5 (its cost: docs/BENCHMARKS.md).
    let enabled: Bool
    /// See `CacheFiller.init`.
    let background: Bool
    /// MD5 checks of complete objects, one at a time each.
    private let queues: [IdleQueue]

    /// Refills of mismatched objects go through `scheduler`; in `background` mode checks wait
    /// while it has blocks on their way.
    init(cache: DiskCache, scheduler: FillScheduler, logger: Logger, enabled: Bool, background: Bool) {
        self.cache = cache
        self.scheduler = scheduler
        self.logger = logger
        self.enabled = enabled
        self.background = background
        let busy: (@Sendable () -> Bool)? = background ? { @Sendable in scheduler.pendingBlocks > 0 } : nil
        queues = (0..<(background ? 1 : Self.md5Threads)).map { _ in IdleQueue(name: "soak-md5", background: busy) }
    }

    func stop() { for q in queues { q.stop() } }

    /// Whether objects of this kind are checked at all.
    func checks(_ o: CachedObject) -> Bool { enabled && o.etagIsMD5 }

    var filesHashed: Int { state.withLock { $0.hashed } }
    var prehashQueued: Int { state.withLock { $0.prehashQueued } }

    /// Queues a complete, unchecked object for its MD5 check; false when there is nothing to
    /// check (blocks missing, checked already, replaced). `waiters` are answered after it.
    func verifyWhenComplete(_ o: CachedObject, waiters: [Waiter]) -> Bool {
        guard let cur = stillComplete(o), cur.verified == .unchecked else { return false }
        let q = state.withLock { s in
            s.waiters[cur.id, default: []] += waiters
            s.pending.append(cur)
            defer { s.nextQueue += 1 }
            return queues[s.nextQueue % queues.count]
        }
        q.async { [self] in verifyPendingBatch() }
        return true
    }

    /// The index's row of `o` if it is still this generation and complete; nil once it was
    /// evicted, replaced or dropped.
    func stillComplete(_ o: CachedObject) -> CachedObject? {
        guard let cur = try? cache.index.object(id: o.id), cur.gen == o.gen, cur.isComplete else { return nil }
        return cur
    }

    /// Queues objects a commit is about to complete (each landed whole, by one order) for
    /// hashing while the commit syncs them to disk: their bytes are in the page cache already,
    /// and the check after the commit then only compares (at the end of a prewarm of d/, 18
    /// objects were hashed after the last sync).
    func prehash(_ objects: [CachedObject]) {
        guard enabled && !background else { return }
        let hashable = objects.filter(\.etagIsMD5)
        guard !hashable.isEmpty else { return }
        state.withLock { s in
            s.prehashPending += hashable
            s.prehashQueued += hashable.count
        }
        queues[0].async { [self] in prehashPendingObjects() }
    }

    /// MD5s of objects' data files, hashed side by side (why: docs/BENCHMARKS.md, MD5 checks).
    private func hashFiles(_ objects: [CachedObject]) -> [String?] {
        state.withLock { $0.hashed += objects.count }
        return FileMD5.of(files: objects.map { (cache.dataPath($0), $0.size) })
    }

    /// Hashes every object `prehash` queued, `MD5Lanes.width` at a time.
    private func prehashPendingObjects() {
        while true {
            let batch = state.withLock { s in
                let b = Array(s.prehashPending.prefix(MD5Lanes.width))
                s.prehashPending.removeFirst(b.count)
                return b
            }
            if batch.isEmpty { return }
            let sums = hashFiles(batch)
            state.withLock { s in
                if s.prehashed.count >= Self.maxPrehashed { s.prehashed.removeAll() }
                // An unreadable file is hashed again after the commit (which knows whether it went).
                for (o, sum) in zip(batch, sums) { if let sum { s.prehashed[o.id] = (o.gen, sum) } }
            }
        }
    }

    /// The next objects to resolve: those hashed before their commit at once (with their sums),
    /// else up to `MD5Lanes.width` to hash now, once that many wait, nothing is being fetched
    /// or `md5GatherWait` has passed since `start`; nil to wait a little for more.
    private func takeBatch(start: Double) -> (batch: [CachedObject], sums: [String?]?)? {
        let fetching = scheduler.pendingBlocks > 0
        return state.withLock { s in
            var hashed: [CachedObject] = [], sums: [String?] = [], rest: [CachedObject] = []
            for o in s.pending {
                if let p = s.prehashed.removeValue(forKey: o.id), p.gen == o.gen {
                    hashed.append(o); sums.append(p.md5)
                } else {
                    rest.append(o)
                }
            }
            s.pending = rest
            if !hashed.isEmpty || rest.isEmpty { return (hashed, sums) }
            guard rest.count >= MD5Lanes.width || !fetching || MonotonicTime.now() - start >= Self.md5GatherWait else {
                return nil
            }
            let batch = Array(rest.prefix(MD5Lanes.width))
            s.pending.removeFirst(batch.count)
            let ids = Set(batch.map(\.id))
            s.prehashPending.removeAll { ids.contains($0.id) }  // hashed here: not again
            return (batch, nil)
        }
    }

    /// Resolves the objects waiting for their check (each `verifyWhenComplete` queues one of
    /// these; a run that finds the list empty does nothing).
    private func verifyPendingBatch() {
        let start = MonotonicTime.now()
        var taken = takeBatch(start: start)
        while taken == nil {
            usleep(5000)
            taken = takeBatch(start: start)
        }
        guard let taken, !taken.batch.isEmpty else { return }
        let batch = taken.batch
        let sums: [String?] = taken.sums ?? hashFiles(batch)
        // Matches are recorded together, before anyone waiting hears of them.
        var matched: [(objectID: Int64, verification: CachedObject.Verification)] = []
        for (cur, sum) in zip(batch, sums) where sum == cur.etag { matched.append((cur.id, .md5Match)) }
        do { try cache.index.setVerified(matched) } catch { logger.warning("could not record MD5 checks: \(error)") }
        for (cur, sum) in zip(batch, sums) { resolve(cur, md5: sum) }
    }

    /// Answers the requests waiting on `cur`'s check, given its data's MD5 (nil: unreadable).
    private func resolve(_ cur: CachedObject, md5 sum: String?) {
        let waiters = state.withLock { $0.waiters.removeValue(forKey: cur.id) ?? [] }
        guard let md5 = sum else {
            // Evicted (or replaced) since it was complete: its file is gone. Otherwise the
            // data file could not be read.
            let gone = stillComplete(cur) == nil
            let err: FillError = gone ? .evicted(key: cur.key) : .local("\(cur.key): could not read its cached data to check its MD5")
            for w in waiters { w.done(cur, err) }
            return
        }
        if md5 == cur.etag {
            for w in waiters { w.done(cur, nil) }
            return
        }
        let strike = state.withLock { $0.strikes.insert(cur.id).inserted == false }
        // Info level, both: a refetch is a retry, and a bucket of SSE-KMS objects would
        // otherwise print two lines per object by default.
        if strike {
            logger.info("\(cur.key): MD5 differs from the ETag twice; the ETag is not an MD5 here (SSE-KMS?)")
            try? cache.index.setVerified(objectID: cur.id, .notMD5)
            for w in waiters { w.done(cur, nil) }
            return
        }
        // Once: maybe bytes went bad on the way. Drop them and fetch the object again.
        logger.info("\(cur.key): MD5 \(md5) does not match ETag \(cur.etag); fetching it again")
        try? cache.dropData(cur)
        guard !waiters.isEmpty else { return }  // a mount: the next read fetches it
        guard let fresh = try? cache.index.object(id: cur.id) else {
            for w in waiters { w.done(cur, .evicted(key: cur.key)) }
            return
        }
        for w in waiters {
            scheduler.fill(fresh, bucket: w.bucket, blocks: nil, lane: .bulk, whenLanded: false, runBlocks: nil, done: w.done)
        }
    }
}
