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
/// objects side by side (`FileMD5`): while the commit that records it syncs when one order
/// fetched it whole (`prehash`), else after that commit. A prewarm's request is answered after
/// that check. A mismatch drops the data and fetches the object once more; a second mismatch
/// means the ETag is not an MD5 (SSE-KMS) and is recorded as such. A 412 (the object changed) drops the old
/// version's blocks; with the engine's `versionCheck` only once HEAD confirmed a new version or a
/// deletion (`.replaced` names the new version for the caller to record and fill).
import Crypto
import Engine
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

public final class CacheFiller: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `lock`; the committer has its own queue lock.
    public typealias Done = @Sendable (CachedObject, FillError?) -> Void

    /// 8 blocks (8 MiB) per order: the download's measured part size.
    public static let defaultMaxRunBlocks = 8
    /// Threads hashing complete objects against their ETag in a prewarm. One: it hashes up to
    /// sixteen objects side by side (`FileMD5`), and a second thread
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

    struct Job {
        var object: CachedObject
        var bucket: String
        var first: Int
        var count: Int
        var lane: Lane
        var engineID = 0
        var requests: [Int] = []
    }

    struct Request {
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

    struct Landed {
        var job: Int
        var blocks: [CacheIndex.LandedBlock]
        var error: FillError?
        /// A mount read waits on it: commit without waiting for the batch interval.
        var urgent = false
    }

    public let cache: DiskCache
    private weak var submitter: FetchSubmitter?
    let logger: Logger
    let maxRunBlocks: Int
    /// Check whole single-part objects against their ETag's MD5 (its cost: docs/BENCHMARKS.md).
    let verifyMD5: Bool
    let lock = NSLock()
    var jobs: [Int: Job] = [:]
    var requests: [Int: Request] = [:]
    var pending: [BlockKey: Int] = [:]
    var nextID = 1
    /// Objects whose MD5 mismatched once in this process (a second time means: not an MD5).
    var md5Strikes = Set<Int64>()

    // Committer thread state.
    let commitCond = NSCondition()
    var landed: [Landed] = []
    var stopping = false
    var committer: Thread?
    /// MD5 checks of complete objects, one at a time (see `init`'s `backgroundVerify`).
    var verifyQueues: [IdleQueue] = []
    /// Complete objects waiting for their MD5 check (guarded by `lock`).
    var verifyPending: [CachedObject] = []
    /// Requests answered once their object's MD5 check is done (guarded by `lock`).
    var verifyWaiters: [Int64: [VerifyWaiter]] = [:]
    /// Whole objects a commit is about to record, to be hashed while it syncs (guarded by `lock`).
    var prehashPending: [CachedObject] = []
    /// MD5s of whole objects hashed before their commit, by object ID, taken by the check after
    /// it (guarded by `lock`). Entries of objects whose check never comes (evicted before their
    /// commit) are dropped when there are `maxPrehashed`.
    var prehashed: [Int64: (gen: Int64, md5: String)] = [:]
    static let maxPrehashed = 10_000
    /// Runs just before a commit with the number of objects queued for hashing so far (tests
    /// hold a commit here).
    var beforeCommit: (@Sendable (Int) -> Void)?
    var prehashQueued = 0
    /// Objects hashed from their files so far (for tests).
    var filesHashed: Int { lock.lock(); defer { lock.unlock() }; return hashedCount }
    var hashedCount = 0
    var nextVerifyQueue = 0
    let backgroundVerify: Bool
    let commitInterval: Double

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
        // Landed blocks before the index (see `DiskCache.read`): a commit between the two
        // lookups would otherwise hide a block from both and fetch it again.
        let landedNow = whenLanded ? cache.landedBlocks(object) : [:]
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
        present.merge(landedNow) { a, _ in a }
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
        // New runs of consecutive blocks, with no short tail run of their own (a 10 MiB object is
        // one request, not 8 + 2 MiB: fewer requests cost the server less CPU per byte).
        var newJobs: [Int] = []
        for run in BlockRanges.runs(fresh, maxRun: max(1, runBlocks ?? maxRunBlocks)) {
            let jid = nextID; nextID += 1
            jobs[jid] = Job(object: object, bucket: bucket, first: run.lowerBound, count: run.count, lane: lane,
                            requests: [rid])
            for i in run { pending[BlockKey(object: object.id, gen: object.gen, index: i)] = jid }
            newJobs.append(jid)
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

    func submit(_ jid: Int, _ job: Job) {
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
    /// wait for has landed. A failed job's blocks stop being pending here, before anyone hears of the failure: a
    /// request made after it (the bucket may have changed since) fetches them again rather than
    /// joining this fetch and getting its old answer. A job that succeeded stays pending until
    /// its commit: joining it is right, its bytes are of the version asked for.
    func answerEarly(job jid: Int, _ job: Job, blocks: [CacheIndex.LandedBlock], error: FillError?) {
        if error == nil { cache.noteLanded(blocks) }
        answerEarly(jid, landed: Set(job.first..<(job.first + job.count)), error: error, releasing: error == nil ? nil : job)
    }

    func answerEarly(_ jid: Int, landed: Set<Int>, error: FillError?, releasing job: Job? = nil) {
        var finished: [(Done, CachedObject, FillError?)] = []
        lock.lock()
        if let job { releasePending(jid, job) }
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

    /// Forgets the blocks `jid` is fetching, unless a later job took them (caller holds `lock`).
    func releasePending(_ jid: Int, _ job: Job) {
        for i in job.first..<(job.first + job.count) {
            let key = BlockKey(object: job.object.id, gen: job.object.gen, index: i)
            if pending[key] == jid { pending[key] = nil }
        }
    }
}
