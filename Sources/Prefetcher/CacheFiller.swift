/// Fetches blocks of cached objects into a `DiskCache` through the engine, each block at most
/// once, and records them durably.
///
/// How it works. `fill` takes the blocks a caller wants (prewarm: every missing block in the
/// bulk lane; the mount: the blocks under a read, urgently). Blocks already present are
/// skipped; blocks some earlier request is already fetching are not fetched again: the new
/// request waits on that fetch, and promotes it if it asked for a higher lane. The rest are
/// cut into runs of up to `maxRunBlocks` and submitted as block orders: the worker reports a
/// CRC32C per block. Completions go to one committer thread, which makes everything that
/// landed durable with a single `syncfs`, records it in the index, and only then answers the
/// waiting requests.
///
/// Integrity: a complete object whose ETag is an MD5 is hashed from its file, up to sixteen
/// objects side by side (`md5(files:)`): while the commit that records it syncs when one order
/// fetched it whole (`prehash`), else after that commit. A prewarm's request is answered after
/// that check. A mismatch drops the data and fetches the object once more; a second mismatch
/// means the ETag is not an MD5 (SSE-KMS) and is recorded as such. A 412 (the object changed) drops the old
/// version's blocks; with the engine's `versionCheck` only once HEAD confirmed a new version or a
/// deletion (`.replaced` names the new version for the caller to record and fill).
import Cache
import Crypto
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

/// What `CacheFiller` needs from the engine (a fake one in unit tests).
public protocol FetchSubmitter: AnyObject, Sendable {
    func submit(bucket: String, key: String, etag: String?, range: ClosedRange<Int64>, path: String,
                fileOffset: Int64, publish: PublishSpec?, blockSize: Int64?, lane: Lane, tag: Int) -> Int
    @discardableResult func promote(_ id: Int, to lane: Lane) -> Bool
    /// Takes back a fetch that no worker has yet; false if it is already under way (or unknown).
    func withdraw(_ id: Int) -> Bool
}

extension FetchEngine: FetchSubmitter {}

/// Why a fill did not complete.
public enum FillError: Error, Sendable, CustomStringConvertible {
    case fetch(S3Error)
    /// 412 on If-Match: the object changed since it was listed.
    case changed(key: String)
    /// 412 on If-Match and HEAD shows version `now`: the old version's blocks were dropped.
    case replaced(key: String, now: ObjectInfo)
    /// 412 on If-Match and HEAD answers 404: the old version's blocks were dropped.
    case deleted(key: String)
    /// The object's data was dropped (evicted, replaced) before the fill finished.
    case evicted(key: String)
    case local(String)

    public var description: String {
        switch self {
        case .fetch(let e): return e.description
        case .changed(let k): return "\(k) changed since it was listed (412 on If-Match); its cached blocks were dropped"
        case .replaced(let k, let now):
            return "\(k) changed since it was listed (now ETag \(now.etag)); its cached blocks were dropped"
        case .deleted: return VersionAnswer.gone.failureReason(listedETag: "")
        case .evicted(let k): return "\(k) was evicted before it was complete (is --cache-size smaller than the data?)"
        case .local(let s): return s
        }
    }

    /// The fetched version is no more: its blocks are dropped.
    var droppedVersion: Bool {
        switch self {
        case .changed, .replaced, .deleted: return true
        case .fetch, .evicted, .local: return false
        }
    }
}

public final class CacheFiller: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `lock`; the committer has its own queue lock.
    public typealias Done = @Sendable (CachedObject, FillError?) -> Void

    /// 8 blocks (8 MiB) per order: the download's measured part size.
    public static let defaultMaxRunBlocks = 8
    /// Threads hashing complete objects against their ETag in a prewarm. One: it hashes up to
    /// sixteen objects side by side (`md5(files:)`, 3.4–3.8 GB/s here), and a second thread
    /// only split the batches.
    static let md5Threads = 1
    /// How long a complete object waits for others to be hashed alongside it while fetches are
    /// under way. Without it a prewarm of d/ mostly hashed one object at a time (objects complete
    /// one by one), at one stream's speed.
    static let md5GatherWait = 0.05
    /// Landed blocks are committed at most this often: each commit is a `syncfs` plus a
    /// transaction, and back-to-back syncs cost kernel time without making anything safer.
    public static let commitInterval = 0.2

    struct BlockKey: Hashable { var object: Int64; var gen: Int64; var index: Int }

    private struct Job {
        var object: CachedObject
        var bucket: String
        var first: Int
        var count: Int
        var lane: Lane
        var engineID = 0
        var requests: [Int] = []
    }

    private struct Request {
        var object: CachedObject
        var remaining: Int
        var error: FillError?
        var done: Done
        /// Answered when its blocks land (readable through `DiskCache.read`), before the sync
        /// that records them: a mount read does not wait for the disk, nor for the rest of a
        /// multi-block fetch.
        var early = false
        /// For early requests: the blocks still to land.
        var waitingBlocks = Set<Int>()
    }

    private struct Landed {
        var job: Int
        var blocks: [CacheIndex.LandedBlock]
        var error: FillError?
        /// A mount read waits on it: commit without waiting for the batch interval.
        var urgent = false
    }

    public let cache: DiskCache
    private weak var submitter: FetchSubmitter?
    private let logger: Logger
    private let maxRunBlocks: Int
    /// Check whole single-part objects against their ETag's MD5 (0.45–0.8 CPU-s per GB, see `md5(files:)`).
    private let verifyMD5: Bool
    private let lock = NSLock()
    private var jobs: [Int: Job] = [:]
    private var requests: [Int: Request] = [:]
    private var pending: [BlockKey: Int] = [:]
    private var nextID = 1
    /// Objects whose MD5 mismatched once in this process (a second time means: not an MD5).
    private var md5Strikes = Set<Int64>()

    // Committer thread state.
    private let commitCond = NSCondition()
    private var landed: [Landed] = []
    private var stopping = false
    private var committer: Thread?
    /// MD5 checks of complete objects, one at a time (see `init`'s `backgroundVerify`).
    private var verifyQueues: [IdleQueue] = []
    /// Complete objects waiting for their MD5 check (guarded by `lock`).
    private var verifyPending: [CachedObject] = []
    /// Requests answered once their object's MD5 check is done (guarded by `lock`).
    private var verifyWaiters: [Int64: [VerifyWaiter]] = [:]
    /// Whole objects a commit is about to record, to be hashed while it syncs (guarded by `lock`).
    private var prehashPending: [CachedObject] = []
    /// MD5s of whole objects hashed before their commit, by object ID, taken by the check after
    /// it (guarded by `lock`). Entries of objects whose check never comes (evicted before their
    /// commit) are dropped when there are `maxPrehashed`.
    private var prehashed: [Int64: (gen: Int64, md5: String)] = [:]
    static let maxPrehashed = 10_000
    /// Runs just before a commit with the number of objects queued for hashing so far (tests
    /// hold a commit here).
    var beforeCommit: (@Sendable (Int) -> Void)?
    private var prehashQueued = 0
    /// Objects hashed from their files so far (for tests).
    var filesHashed: Int { lock.lock(); defer { lock.unlock() }; return hashedCount }
    private var hashedCount = 0
    private var nextVerifyQueue = 0
    private let backgroundVerify: Bool
    private let commitInterval: Double

    /// `backgroundVerify`: MD5 checks wait while blocks are being fetched (up to 30 s) and run at
    /// the lowest CPU priority, so a mount's readers never compete with them; off (prewarm),
    /// they run alongside the fetches.
    public init(cache: DiskCache, submitter: FetchSubmitter, logger: Logger, maxRunBlocks: Int = defaultMaxRunBlocks,
                verifyMD5: Bool = true, backgroundVerify: Bool = false, commitInterval: Double = CacheFiller.commitInterval) {
        self.cache = cache
        self.commitInterval = commitInterval
        self.verifyMD5 = verifyMD5
        self.submitter = submitter
        self.logger = logger
        self.maxRunBlocks = max(1, maxRunBlocks)
        self.backgroundVerify = backgroundVerify
        let busy: (@Sendable () -> Bool)?
        if backgroundVerify {
            final class Weak: @unchecked Sendable { weak var filler: CacheFiller? }
            let w = Weak()
            busy = { (w.filler?.pendingBlocks ?? 0) > 0 }
            w.filler = self
        } else {
            busy = nil
        }
        verifyQueues = (0..<(backgroundVerify ? 1 : Self.md5Threads)).map { _ in IdleQueue(name: "soak-md5", background: busy) }
        let t = Thread { [unowned self] in self.commitLoop() }
        t.name = "soak-committer"
        committer = t
        t.start()
    }

    /// Stops the committer after it has recorded everything already landed.
    public func stop() {
        commitCond.lock(); stopping = true; commitCond.broadcast(); commitCond.unlock()
        while true {
            commitCond.lock(); let done = committer == nil; commitCond.unlock()
            if done { break }
            usleep(1000)
        }
        for q in verifyQueues { q.stop() }
    }

    /// Blocks being fetched now (for `soak status` and tests).
    public var pendingBlocks: Int { lock.lock(); defer { lock.unlock() }; return pending.count }

    /// Fetches `blocks` of `object` (all missing blocks when nil) unless present or already on
    /// their way; `done` runs once every one of them is recorded or failed.
    /// `runBlocks` caps the blocks per fetch for this request (default `maxRunBlocks`): smaller
    /// runs spread a reader's read-ahead over several connections.
    public func fill(_ object: CachedObject, bucket: String, blocks wanted: [Int]? = nil, lane: Lane,
                     whenLanded: Bool = false, runBlocks: Int? = nil, done: @escaping Done) {
        let bs = cache.blockSize
        let all = wanted ?? Array(0..<object.blockCount(blockSize: bs))
        var present: [Int: UInt32]
        do {
            // A version whose data was dropped is not fetched again: that would make a new file
            // under a name open files of it may still hold the old one of.
            guard let p = try cache.index.presentBlocksIfCurrent(objectID: object.id, gen: object.gen) else {
                done(object, .evicted(key: object.key))
                return
            }
            present = p
        } catch {
            done(object, .local("\(error)"))
            return
        }
        if whenLanded { present.merge(cache.landedBlocks(object)) { a, _ in a } }
        lock.lock()
        let rid = nextID; nextID += 1
        var waitOn = Set<Int>()
        var fresh: [Int] = []
        for i in all.sorted() where present[i] == nil {
            if let j = pending[BlockKey(object: object.id, gen: object.gen, index: i)] {
                waitOn.insert(j)
            } else if fresh.last != i {
                fresh.append(i)
            }
        }
        // A more urgent request for blocks a queued multi-block fetch holds: that fetch is taken
        // back and split, so the wanted blocks go first on their own and the rest keep their lane
        // (promoting the whole run would make the read wait for all of it). A fetch already under
        // way is promoted and waited on: its blocks are announced as they land.
        var promotions: [Int] = []
        var splits: [Int] = []
        let wantedNow = Set(all.filter { present[$0] == nil })
        for j in waitOn {
            guard let job = jobs[j] else { continue }
            if lane < job.lane, job.count > 1, job.engineID != 0, submitter?.withdraw(job.engineID) == true {
                jobs[j] = nil
                var segments: [(first: Int, count: Int, wanted: Bool)] = []
                for i in job.first..<(job.first + job.count) {
                    let w = wantedNow.contains(i)
                    if let last = segments.last, last.wanted == w, last.first + last.count == i {
                        segments[segments.count - 1].count += 1
                    } else {
                        segments.append((i, 1, w))
                    }
                }
                for seg in segments {
                    let nj = nextID; nextID += 1
                    jobs[nj] = Job(object: job.object, bucket: job.bucket, first: seg.first, count: seg.count,
                                   lane: seg.wanted ? lane : job.lane, requests: job.requests + (seg.wanted ? [rid] : []))
                    for i in seg.first..<(seg.first + seg.count) {
                        pending[BlockKey(object: job.object.id, gen: job.object.gen, index: i)] = nj
                    }
                    splits.append(nj)
                    if seg.wanted { waitOn.insert(nj) }
                }
                for r in job.requests { requests[r]?.remaining += segments.count - 1 }
                waitOn.remove(j)
                continue
            }
            jobs[j]!.requests.append(rid)
            if lane < job.lane { jobs[j]!.lane = lane; promotions.append(job.engineID) }
        }
        // New runs of consecutive blocks.
        var newJobs: [Int] = []
        var k = 0
        while k < fresh.count {
            var n = 1
            let cap = runBlocks ?? maxRunBlocks
            while k + n < fresh.count, fresh[k + n] == fresh[k] + n, n < cap { n += 1 }
            // No short tail run: up to half a run more goes with this one (a 10 MiB object is
            // one request, not 8 + 2 MiB: fewer requests cost the server less CPU per byte).
            var tail = 0
            while k + n + tail < fresh.count, fresh[k + n + tail] == fresh[k] + n + tail, tail <= cap / 2 { tail += 1 }
            if tail <= cap / 2 { n += tail }
            let jid = nextID; nextID += 1
            jobs[jid] = Job(object: object, bucket: bucket, first: fresh[k], count: n, lane: lane, requests: [rid])
            for i in fresh[k]..<(fresh[k] + n) { pending[BlockKey(object: object.id, gen: object.gen, index: i)] = jid }
            newJobs.append(jid)
            k += n
        }
        let total = waitOn.count + newJobs.count
        if total == 0 {
            lock.unlock()
            done(object, nil)
            return
        }
        var waiting = Set(fresh)
        if whenLanded {
            for i in all where present[i] == nil { waiting.insert(i) }
        }
        requests[rid] = Request(object: object, remaining: total, done: done, early: whenLanded, waitingBlocks: waiting)
        let toSubmit = (splits + newJobs).map { ($0, jobs[$0]!) }
        lock.unlock()
        for id in promotions { submitter?.promote(id, to: lane) }
        for (jid, job) in toSubmit { submit(jid, job) }
    }

    private func submit(_ jid: Int, _ job: Job) {
        let bs = cache.blockSize
        let o = job.object
        let start = Int64(job.first) * bs
        let end = min(o.size, Int64(job.first + job.count) * bs) - 1
        guard let s = submitter else { return }
        let eid = s.submit(bucket: job.bucket, key: o.key, etag: o.etag.isEmpty ? nil : o.etag, range: start...end,
                           path: cache.dataPath(o), fileOffset: start, publish: nil, blockSize: bs,
                           lane: job.lane, tag: jid)
        lock.lock()
        jobs[jid]?.engineID = eid
        lock.unlock()
    }

    /// The engine's completion callback (engine thread): hands what landed to the committer.
    public func completed(_ c: FetchCompletion) {
        lock.lock()
        guard let job = jobs[c.tag] else { lock.unlock(); return }
        lock.unlock()
        let bs = cache.blockSize
        let o = job.object
        var blocks: [CacheIndex.LandedBlock] = []
        for (k, crc) in c.crcs.prefix(job.count).enumerated() {
            let i = job.first + k
            blocks.append(CacheIndex.LandedBlock(objectID: o.id, gen: o.gen, index: i, crc: crc,
                                                 bytes: o.blockRange(i, blockSize: bs).count64))
        }
        var error: FillError?
        if let e = c.error {
            switch (e.isPreconditionFailed, c.version) {
            case (false, _): error = .fetch(e)
            case (true, nil): error = .changed(key: o.key)
            case (true, .changed(let now)?): error = .replaced(key: o.key, now: now)
            case (true, .gone?): error = .deleted(key: o.key)
            case (true, let answer?):
                // Same ETag (attempts ran out) or HEAD failed: the blocks that landed are of
                // the version the row names, and are kept.
                error = .local(answer.failureReason(listedETag: o.etag))
            }
            if e.isPreconditionFailed && error?.droppedVersion == true {
                blocks = []
                // Drop the old version before anyone waiting hears of it, so what they do next
                // (a mount reader reopening) sees the new generation.
                do { try cache.dropData(o) } catch { logger.warning("could not drop \(o.key): \(error)") }
            }
        } else if blocks.count != job.count {
            error = .local("\(o.key): worker reported \(c.crcs.count) block checksums for \(job.count) blocks")
        }
        answerEarly(job: c.tag, job, blocks: blocks, error: error)
        commitCond.lock()
        landed.append(Landed(job: c.tag, blocks: blocks, error: error, urgent: job.lane < .bulk))
        // Woken only when this changes what the committer waits for: it sleeps on an empty
        // batch, and on a non-empty one until the interval ends, something urgent lands or
        // everything has. A signal per landing (5000 in a prewarm of small/) cost the engine
        // thread a futex wake each and the committer a wakeup each, for nothing.
        if landed.count == 1 || job.lane < .bulk || everythingLanded() { commitCond.signal() }
        commitCond.unlock()
    }

    /// The engine's report that some blocks of a job are written (before the job is done).
    public func blocksLanded(tag jid: Int, first: Int, crcs: [UInt32]) {
        lock.lock()
        guard let job = jobs[jid] else { lock.unlock(); return }
        lock.unlock()
        let o = job.object
        let bs = cache.blockSize
        var blocks: [CacheIndex.LandedBlock] = []
        for (k, crc) in crcs.enumerated() where first + k < job.count {
            let i = job.first + first + k
            blocks.append(CacheIndex.LandedBlock(objectID: o.id, gen: o.gen, index: i, crc: crc,
                                                 bytes: o.blockRange(i, blockSize: bs).count64))
        }
        cache.noteLanded(blocks)
        answerEarly(jid, landed: Set(blocks.map(\.index)), error: nil)
    }

    /// Early requests of a finished job: answered with its error, or once every block they
    /// wait for has landed.
    private func answerEarly(job jid: Int, _ job: Job, blocks: [CacheIndex.LandedBlock], error: FillError?) {
        if error == nil { cache.noteLanded(blocks) }
        answerEarly(jid, landed: Set(job.first..<(job.first + job.count)), error: error)
    }

    private func answerEarly(_ jid: Int, landed: Set<Int>, error: FillError?) {
        var finished: [(Done, CachedObject, FillError?)] = []
        lock.lock()
        // The job's requests as they are now: one may have joined since its caller looked.
        for rid in jobs[jid]?.requests ?? [] {
            guard var r = requests[rid], r.early else { continue }
            if let error {
                r.error = r.error ?? error
                r.waitingBlocks.removeAll()
            } else {
                r.waitingBlocks.subtract(landed)
            }
            if r.waitingBlocks.isEmpty {
                requests[rid] = nil  // answered: later completions skip it
                finished.append((r.done, r.object, r.error))
            } else {
                requests[rid] = r
            }
        }
        lock.unlock()
        for (done, o, e) in finished { done(o, e) }
    }

    // MARK: - Committer thread

    private func commitLoop() {
        var last = 0.0
        while true {
            commitCond.lock()
            while landed.isEmpty && !stopping { commitCond.wait() }
            // Let a batch build up (unless stopping): one sync covers all of it.
            // Not when nothing else is on its way (the end of a prewarm): waiting would only delay it.
            while !stopping, !landed.contains(where: \.urgent), !everythingLanded(),
                  MonotonicTime.now() - last < commitInterval {
                _ = commitCond.wait(until: Date(timeIntervalSinceNow: commitInterval - (MonotonicTime.now() - last)))
            }
            last = MonotonicTime.now()
            if landed.isEmpty && stopping {
                committer = nil
                commitCond.broadcast()
                commitCond.unlock()
                return
            }
            let batch = landed
            landed.removeAll()
            commitCond.unlock()
            process(batch)
        }
    }

    /// Every job under way has landed (caller holds `commitCond`; `lock` is never held while
    /// taking `commitCond`). A job leaves `jobs` when a commit has processed it.
    private func everythingLanded() -> Bool {
        lock.lock(); defer { lock.unlock() }
        return landed.count >= jobs.count
    }

    private func process(_ batch: [Landed]) {
        var toCommit: [CacheIndex.LandedBlock] = []
        var outcome: [Int: FillError?] = [:]
        var whole: [CachedObject] = []
        let bs = cache.blockSize
        for l in batch {
            lock.lock(); let job = jobs[l.job]; lock.unlock()
            guard let job else { continue }
            toCommit += l.blocks
            outcome[l.job] = l.error  // a 412's old version was dropped in `completed`
            if l.error == nil, job.first == 0, job.count == job.object.blockCount(blockSize: bs),
               l.blocks.count == job.count {
                whole.append(job.object)
            }
        }
        prehash(whole)
        if let hook = beforeCommit { lock.lock(); let n = prehashQueued; lock.unlock(); hook(n) }
        var accepted = Set<BlockKey>()
        do {
            let t0 = MonotonicTime.now()
            for b in try cache.commit(toCommit) { accepted.insert(BlockKey(object: b.objectID, gen: b.gen, index: b.index)) }
            logger.debug("committed \(toCommit.count) blocks in \(Int((MonotonicTime.now() - t0) * 1000)) ms")
        } catch {
            logger.error("could not record landed blocks: \(error)")
            for (j, e) in outcome where e == nil { outcome[j] = .local("could not record blocks: \(error)") }
        }
        // Answer requests, and hash objects now complete. A prewarm's request for a whole object
        // is answered after its MD5 check (`verifyWhenComplete`), so a mismatch is fetched again
        // within the same run; a mount's reads are answered at once.
        var finished: [(Done, CachedObject, FillError?)] = []
        var hashNow: [Int64: CachedObject] = [:]
        var afterCheck: [Int64: [VerifyWaiter]] = [:]
        lock.lock()
        for (jid, e) in outcome {
            guard let job = jobs.removeValue(forKey: jid) else { continue }
            var err = e
            let o = job.object
            for i in job.first..<(job.first + job.count) {
                let key = BlockKey(object: o.id, gen: o.gen, index: i)
                pending[key] = nil
                if err == nil && !accepted.contains(key) { err = .evicted(key: o.key) }
            }
            let hash = err == nil && o.etagIsMD5 && verifyMD5
            if hash { hashNow[o.id] = o }
            for rid in job.requests {
                guard var r = requests[rid] else { continue }
                if r.early {
                    // Answered when its blocks landed, normally. One that joined this job after
                    // the landing was announced is answered now: its blocks are recorded (or failed).
                    r.waitingBlocks.subtract(job.first..<(job.first + job.count))
                    if e != nil { r.error = r.error ?? e; r.waitingBlocks.removeAll() }
                    if r.waitingBlocks.isEmpty {
                        requests[rid] = nil
                        finished.append((r.done, r.object, r.error))
                    } else {
                        requests[rid] = r
                    }
                    continue
                }
                r.remaining -= 1
                if r.error == nil { r.error = err }
                if r.remaining == 0 {
                    requests[rid] = nil
                    if hash && r.error == nil && !backgroundVerify {
                        afterCheck[o.id, default: []].append(VerifyWaiter(bucket: job.bucket, done: r.done))
                    } else {
                        finished.append((r.done, r.object, r.error))
                    }
                } else {
                    requests[rid] = r
                }
            }
        }
        lock.unlock()
        for (id, o) in hashNow {
            let waiters = afterCheck[id] ?? []
            if verifyWhenComplete(o, waiters: waiters) || waiters.isEmpty { continue }
            // Nothing to check: checked already, or evicted or replaced since its commit.
            let gone = stillComplete(o) == nil
            for w in waiters { w.done(o, gone ? .evicted(key: o.key) : nil) }
        }
        for (done, o, e) in finished { done(o, e) }
    }

    /// A request answered after its object's MD5 check.
    private struct VerifyWaiter {
        var bucket: String
        var done: Done
    }

    /// Queues a complete, unchecked object for its MD5 check; false when there is nothing to
    /// check (blocks missing, checked already, replaced). `waiters` are answered after it.
    /// A mismatch drops the data and fills the object again for the waiters; a second one
    /// means the ETag is not an MD5.
    private func verifyWhenComplete(_ o: CachedObject, waiters: [VerifyWaiter]) -> Bool {
        guard let cur = stillComplete(o), cur.verified == .unchecked else { return false }
        lock.lock()
        verifyWaiters[cur.id, default: []] += waiters
        verifyPending.append(cur)
        let q = verifyQueues[nextVerifyQueue % verifyQueues.count]; nextVerifyQueue += 1
        lock.unlock()
        q.async { [self] in verifyPendingBatch() }
        return true
    }

    /// The index's row of `o` if it is still this generation and complete; nil once it was
    /// evicted, replaced or dropped.
    private func stillComplete(_ o: CachedObject) -> CachedObject? {
        guard let cur = try? cache.index.object(id: o.id), cur.gen == o.gen, cur.isComplete else { return nil }
        return cur
    }

    /// Queues objects a commit is about to complete (each landed whole, by one order) for
    /// hashing while the commit syncs them to disk: their bytes are in the page cache already,
    /// and the check after the commit then only compares (at the end of a prewarm of d/, 18
    /// objects were hashed after the last sync).
    private func prehash(_ objects: [CachedObject]) {
        guard verifyMD5 && !backgroundVerify else { return }
        let hashable = objects.filter(\.etagIsMD5)
        guard !hashable.isEmpty else { return }
        lock.lock()
        prehashPending += hashable
        prehashQueued += hashable.count
        lock.unlock()
        verifyQueues[0].async { [self] in prehashPendingObjects() }
    }

    /// MD5s of objects' data files, side by side (counted for tests).
    private func hashFiles(_ objects: [CachedObject]) -> [String?] {
        lock.lock(); hashedCount += objects.count; lock.unlock()
        return Self.md5(files: objects.map { (cache.dataPath($0), $0.size) })
    }

    /// Hashes every object `prehash` queued, `MD5Lanes.width` at a time.
    private func prehashPendingObjects() {
        while true {
            lock.lock()
            let batch = Array(prehashPending.prefix(MD5Lanes.width))
            prehashPending.removeFirst(batch.count)
            lock.unlock()
            if batch.isEmpty { return }
            let sums = hashFiles(batch)
            lock.lock()
            if prehashed.count >= Self.maxPrehashed { prehashed.removeAll() }
            // An unreadable file is hashed again after the commit (which knows whether it went).
            for (o, sum) in zip(batch, sums) { if let sum { prehashed[o.id] = (o.gen, sum) } }
            lock.unlock()
        }
    }

    /// Resolves the objects waiting for their check: those hashed before their commit at once,
    /// the others up to `MD5Lanes.width` side by side (each `verifyWhenComplete` queues one of
    /// these; a run that finds the list empty does nothing).
    private func verifyPendingBatch() {
        let start = MonotonicTime.now()
        var batch: [CachedObject] = []
        var sums: [String?] = []
        while true {
            lock.lock()
            var rest: [CachedObject] = []
            for o in verifyPending {
                if let p = prehashed.removeValue(forKey: o.id), p.gen == o.gen {
                    batch.append(o); sums.append(p.md5)
                } else {
                    rest.append(o)
                }
            }
            verifyPending = rest
            let waiting = rest.count, fetching = !pending.isEmpty
            if !batch.isEmpty || waiting == 0 { lock.unlock(); break }
            if waiting >= MD5Lanes.width || !fetching || MonotonicTime.now() - start >= Self.md5GatherWait {
                batch = Array(rest.prefix(MD5Lanes.width))
                verifyPending.removeFirst(batch.count)
                let ids = Set(batch.map(\.id))
                prehashPending.removeAll { ids.contains($0.id) }  // hashed here: not again
                lock.unlock()
                sums = hashFiles(batch)
                break
            }
            lock.unlock()
            usleep(5000)
        }
        guard !batch.isEmpty else { return }
        // Matches are recorded together, before anyone waiting hears of them.
        var matched: [(objectID: Int64, verification: CachedObject.Verification)] = []
        for (cur, sum) in zip(batch, sums) where sum == cur.etag { matched.append((cur.id, .md5Match)) }
        do { try cache.index.setVerified(matched) } catch { logger.warning("could not record MD5 checks: \(error)") }
        for (cur, sum) in zip(batch, sums) {
            lock.lock(); let waiters = verifyWaiters.removeValue(forKey: cur.id) ?? []; lock.unlock()
            guard let md5 = sum else {
                // Evicted (or replaced) since it was complete: its file is gone. Otherwise the
                // data file could not be read.
                let gone = stillComplete(cur) == nil
                let err: FillError = gone ? .evicted(key: cur.key) : .local("\(cur.key): could not read its cached data to check its MD5")
                for w in waiters { w.done(cur, err) }
                continue
            }
            if md5 == cur.etag {
                for w in waiters { w.done(cur, nil) }
                continue
            }
            lock.lock(); let strike = md5Strikes.contains(cur.id); md5Strikes.insert(cur.id); lock.unlock()
            // Info level, both: a refetch is a retry, and a bucket of SSE-KMS objects would
            // otherwise print two lines per object by default.
            if strike {
                logger.info("\(cur.key): MD5 differs from the ETag twice; the ETag is not an MD5 here (SSE-KMS?)")
                try? cache.index.setVerified(objectID: cur.id, .notMD5)
                for w in waiters { w.done(cur, nil) }
                continue
            }
            // Once: maybe bytes went bad on the way. Drop them and fetch the object again.
            logger.info("\(cur.key): MD5 \(md5) does not match ETag \(cur.etag); fetching it again")
            try? cache.dropData(cur)
            guard !waiters.isEmpty else { continue }  // a mount: the next read fetches it
            guard let fresh = try? cache.index.object(id: cur.id) else {
                for w in waiters { w.done(cur, .evicted(key: cur.key)) }
                continue
            }
            for w in waiters { fill(fresh, bucket: w.bucket, lane: .bulk, done: w.done) }
        }
    }

    /// Bytes read from each file per round of `md5(files:)`: 2 MiB of buffers for sixteen
    /// files, the size of a core's L2 here.
    static let md5LaneChunk = 128 << 10

    /// MD5s of data files' first `size` bytes (nil for a file that could not be read whole).
    /// Several files are hashed side by side in `MD5Lanes`, a chunk of each per round: the 100
    /// files of d/ (1 GB, in the page cache) took 0.28–0.31 s sixteen at a time (0.44–0.45 s
    /// eight at a time before the kernel's lane-mask fix and the AVX-512 build) against
    /// 1.46–1.52 s one after the other (`soak __bench-md5`). One file goes through the
    /// one-stream MD5, which is faster than a lone lane.
    public static func md5(files: [(path: String, size: Int64)]) -> [String?] {
        precondition(files.count <= MD5Lanes.width)
        if files.count == 1 { return [md5(path: files[0].path, size: files[0].size)] }
        let chunk = md5LaneChunk
        let fds = files.map { open($0.path, O_RDONLY | O_CLOEXEC) }
        defer { for fd in fds where fd >= 0 { close(fd) } }
        var ok = fds.map { $0 >= 0 }
        var offsets = [Int64](repeating: 0, count: files.count)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk * files.count, alignment: 64)
        defer { buf.deallocate() }
        let lanes = MD5Lanes()
        while true {
            var input = [UnsafeRawBufferPointer](repeating: UnsafeRawBufferPointer(start: nil, count: 0), count: files.count)
            var any = false
            for i in files.indices where ok[i] && offsets[i] < files[i].size {
                let want = Int(min(Int64(chunk), files[i].size - offsets[i]))
                let p = buf.baseAddress! + i * chunk
                guard preadFully(fds[i], p, want, at: offsets[i]) else { ok[i] = false; continue }
                input[i] = UnsafeRawBufferPointer(start: p, count: want)
                offsets[i] += Int64(want)
                any = true
            }
            guard any else { break }
            lanes.update(input)
        }
        return files.indices.map { ok[$0] ? lowercaseHex(lanes.digest(lane: $0)) : nil }
    }

    /// Reads exactly `count` bytes at `offset`; false on an error or an early end of file.
    private static func preadFully(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ count: Int, at offset: Int64) -> Bool {
        var done = 0
        while done < count {
            let n = pread(fd, p + done, count - done, off_t(offset + Int64(done)))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    /// MD5 of a data file's first `size` bytes, read in 1 MiB chunks.
    public static func md5(path: String, size: Int64) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var h = Insecure.MD5()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buf.deallocate() }
        var off: Int64 = 0
        while off < size {
            let want = Int(min(Int64(buf.count), size - off))
            guard preadFully(fd, buf.baseAddress!, want, at: off) else { return nil }
            h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buf[0..<want]))
            off += Int64(want)
        }
        return lowercaseHex(h.finalize())
    }
}
