/// The fill's scheduler (see `CacheFiller`): which blocks are on their way, in which job, and
/// which requests wait for them. It skips blocks present, joins and promotes fetches already
/// under way, splits a queued fetch a more urgent request needs part of, cuts the rest into
/// runs for the engine, and answers requests: early ones as their blocks land, the others
/// when the committer reports their jobs recorded (`settle`).
import Engine
import Foundation
import S3
import SoakCore
import Synchronization

final class FillScheduler: Sendable {
    typealias Done = CacheFiller.Done

    struct BlockKey: Hashable { var object: Int64; var gen: Int64; var index: Int }

    struct Job {
        var object: CachedObject
        var bucket: String
        var first: Int
        var count: Int
        var lane: Lane
        var engineID = 0
        var requests: [Int] = []
        var blocks: Range<Int> { first..<(first + count) }
        func key(_ i: Int) -> BlockKey { BlockKey(object: object.id, gen: object.gen, index: i) }
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

    /// Everything the scheduler knows, behind its one lock.
    struct State {
        var jobs: [Int: Job] = [:]
        var requests: [Int: Request] = [:]
        /// The job fetching each block on its way.
        var pending: [BlockKey: Int] = [:]
        var nextID = 1
        /// Weak: the engine holds its listener (the filler), which holds this.
        weak var submitter: FetchSubmitter?

        mutating func newID() -> Int { defer { nextID += 1 }; return nextID }

        /// Forgets the blocks `jid` is fetching, unless a later job took them.
        mutating func releasePending(_ jid: Int, _ job: Job) {
            for i in job.blocks where pending[job.key(i)] == jid { pending[job.key(i)] = nil }
        }
    }

    /// A request answer: run it once the lock is released.
    typealias Answer = (done: Done, object: CachedObject, error: FillError?)

    private let state: Mutex<State>
    let cache: DiskCache
    let maxRunBlocks: Int

    init(cache: DiskCache, submitter: FetchSubmitter, maxRunBlocks: Int) {
        var s = State()
        s.submitter = submitter
        state = Mutex(s)
        self.cache = cache
        self.maxRunBlocks = max(1, maxRunBlocks)
    }

    /// Blocks on their way now.
    var pendingBlocks: Int { state.withLock { $0.pending.count } }

    /// Jobs not yet settled by a commit.
    var jobCount: Int { state.withLock { $0.jobs.count } }

    func job(_ jid: Int) -> Job? { state.withLock { $0.jobs[jid] } }

    /// See `CacheFiller.fill`.
    func fill(_ object: CachedObject, bucket: String, blocks wanted: [Int]?, lane: Lane, whenLanded: Bool,
              runBlocks: Int?, done: @escaping Done) {
        let all = wanted ?? Array(0..<object.blockCount(blockSize: cache.blockSize))
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
        let missing = all.filter { present[$0] == nil }
        let plan = state.withLock { s in
            Self.plan(&s, object, bucket: bucket, missing: missing, lane: lane, whenLanded: whenLanded,
                      maxRun: max(1, runBlocks ?? maxRunBlocks), done: done)
        }
        guard let plan else { return done(object, nil) }
        for id in plan.promotions { plan.submitter?.promote(id, to: lane) }
        for (jid, job) in plan.submit { submit(jid, job, via: plan.submitter) }
    }

    /// What a new request starts: promotions of fetches under way and jobs to submit; nil when
    /// nothing is missing or on its way (the caller answers at once).
    private static func plan(_ s: inout State, _ object: CachedObject, bucket: String, missing: [Int], lane: Lane,
                             whenLanded: Bool, maxRun: Int, done: @escaping Done)
        -> (promotions: [Int], submit: [(Int, Job)], submitter: FetchSubmitter?)? {
        let rid = s.newID()
        var waitOn = Set<Int>()
        var fresh: [Int] = []
        for i in missing.sorted() {
            if let j = s.pending[BlockKey(object: object.id, gen: object.gen, index: i)] {
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
        let wantedNow = Set(missing)
        for j in waitOn {
            guard let job = s.jobs[j] else { continue }
            if lane < job.lane, job.count > 1, job.engineID != 0, s.submitter?.withdraw(job.engineID) == true {
                s.jobs[j] = nil
                var segments: [(first: Int, count: Int, wanted: Bool)] = []
                for i in job.blocks {
                    let w = wantedNow.contains(i)
                    if let last = segments.last, last.wanted == w, last.first + last.count == i {
                        segments[segments.count - 1].count += 1
                    } else {
                        segments.append((i, 1, w))
                    }
                }
                for seg in segments {
                    let nj = s.newID()
                    let part = Job(object: job.object, bucket: job.bucket, first: seg.first, count: seg.count,
                                   lane: seg.wanted ? lane : job.lane, requests: job.requests + (seg.wanted ? [rid] : []))
                    s.jobs[nj] = part
                    for i in part.blocks { s.pending[part.key(i)] = nj }
                    splits.append(nj)
                    if seg.wanted { waitOn.insert(nj) }
                }
                for r in job.requests { s.requests[r]?.remaining += segments.count - 1 }
                waitOn.remove(j)
                continue
            }
            s.jobs[j]!.requests.append(rid)
            if lane < job.lane { s.jobs[j]!.lane = lane; promotions.append(job.engineID) }
        }
        // New runs of consecutive blocks, with no short tail run of their own (a 10 MiB object is
        // one request, not 8 + 2 MiB: fewer requests cost the server less CPU per byte).
        var newJobs: [Int] = []
        for run in BlockRanges.runs(fresh, maxRun: maxRun) {
            let jid = s.newID()
            let job = Job(object: object, bucket: bucket, first: run.lowerBound, count: run.count, lane: lane,
                          requests: [rid])
            s.jobs[jid] = job
            for i in run { s.pending[job.key(i)] = jid }
            newJobs.append(jid)
        }
        let total = waitOn.count + newJobs.count
        if total == 0 { return nil }
        s.requests[rid] = Request(object: object, remaining: total, done: done, early: whenLanded,
                                  waitingBlocks: whenLanded ? Set(missing) : Set(fresh))
        let toSubmit = (splits + newJobs).map { ($0, s.jobs[$0]!) }
        return (promotions, toSubmit, s.submitter)
    }

    private func submit(_ jid: Int, _ job: Job, via submitter: FetchSubmitter?) {
        let bs = cache.blockSize
        let o = job.object
        let start = Int64(job.first) * bs
        let end = min(o.size, Int64(job.first + job.count) * bs) - 1
        guard let submitter else { return }
        let eid = submitter.submit(bucket: job.bucket, key: o.key, etag: o.etag.isEmpty ? nil : o.etag, range: start...end,
                                   path: cache.dataPath(o), fileOffset: start, publish: nil, blockSize: bs,
                                   lane: job.lane, tag: jid)
        state.withLock { $0.jobs[jid]?.engineID = eid }
    }

    /// Answers the early requests of job `jid` whose blocks have all landed now (`landed`), or
    /// all of them with `error`. A failed job (`finished` with an error) stops holding its
    /// blocks first, before anyone hears of the failure: a request made after it (the bucket
    /// may have changed since) fetches them again rather than joining this fetch and getting
    /// its old answer. A job that succeeded stays pending until its commit: joining it is
    /// right, its bytes are of the version asked for.
    func answerEarly(_ jid: Int, landed: Set<Int>, error: FillError?, finished: Bool = false) {
        let answers: [Answer] = state.withLock { s in
            if finished, error != nil, let job = s.jobs[jid] { s.releasePending(jid, job) }
            var out: [Answer] = []
            // The job's requests as they are now: one may have joined since its caller looked.
            for rid in s.jobs[jid]?.requests ?? [] {
                guard var r = s.requests[rid], r.early else { continue }
                if let error {
                    r.error = r.error ?? error
                    r.waitingBlocks.removeAll()
                } else {
                    r.waitingBlocks.subtract(landed)
                }
                if r.waitingBlocks.isEmpty {
                    s.requests[rid] = nil  // answered: later completions skip it
                    out.append((r.done, r.object, r.error))
                } else {
                    s.requests[rid] = r
                }
            }
            return out
        }
        for a in answers { a.done(a.object, a.error) }
    }

    /// What settling committed jobs leaves to do once the lock is released.
    struct Settled {
        var answers: [Answer] = []
        /// Objects now complete, to be checked against their ETag's MD5.
        var toCheck: [Int64: CachedObject] = [:]
        /// Requests to answer after their object's check.
        var afterCheck: [Int64: [FillVerifier.Waiter]] = [:]
    }

    /// Ends the jobs of a commit: `outcome` per job, `accepted` the blocks the index took (the
    /// others were refused: their version is gone). Objects `check` accepts are to be hashed;
    /// with `answerAfterCheck`, requests for them are answered after that.
    func settle(_ outcome: [Int: FillError?], accepted: Set<BlockKey>, check: (CachedObject) -> Bool,
                answerAfterCheck: Bool) -> Settled {
        state.withLock { s in
            var out = Settled()
            for (jid, e) in outcome {
                guard let job = s.jobs.removeValue(forKey: jid) else { continue }
                var err = e
                let o = job.object
                s.releasePending(jid, job)
                if err == nil && !job.blocks.allSatisfy({ accepted.contains(job.key($0)) }) { err = .evicted(key: o.key) }
                let hash = err == nil && check(o)
                if hash { out.toCheck[o.id] = o }
                for rid in job.requests {
                    guard var r = s.requests[rid] else { continue }
                    if r.early {
                        // Answered when its blocks landed, normally. One that joined this job after
                        // the landing was announced is answered now: its blocks are recorded (or failed).
                        r.waitingBlocks.subtract(job.blocks)
                        if e != nil { r.error = r.error ?? e; r.waitingBlocks.removeAll() }
                        if r.waitingBlocks.isEmpty {
                            s.requests[rid] = nil
                            out.answers.append((r.done, r.object, r.error))
                        } else {
                            s.requests[rid] = r
                        }
                        continue
                    }
                    r.remaining -= 1
                    if r.error == nil { r.error = err }
                    if r.remaining == 0 {
                        s.requests[rid] = nil
                        if hash && r.error == nil && answerAfterCheck {
                            out.afterCheck[o.id, default: []].append(FillVerifier.Waiter(bucket: job.bucket, done: r.done))
                        } else {
                            out.answers.append((r.done, r.object, r.error))
                        }
                    } else {
                        s.requests[rid] = r
                    }
                }
            }
            return out
        }
    }
}
