/// The fill's committer (see `CacheFiller`): one thread that makes what landed durable (one
/// `syncfs` per batch), records it in the index, and only then has the scheduler settle the
/// jobs and answer their requests; complete objects go to the integrity checks.
import Engine
import Foundation
import Logging
import SoakCore

final class FillCommitter: @unchecked Sendable {
    // @unchecked: `landed`, `stopping`, `running` and `beforeCommit` are guarded by `cond`
    // (a condition the thread waits on, which `Mutex` does not offer); the rest is set once.

    /// What one finished job brought: its blocks (if any landed) and its error.
    struct Landed {
        var job: Int
        var blocks: [CacheIndex.LandedBlock]
        var error: FillError?
        /// A mount read waits on it: commit without waiting for the batch interval.
        var urgent = false
    }

    // Guarded by `cond`.
    private let cond = NSCondition()
    private var landed: [Landed] = []
    private var stopping = false
    private var running = true
    /// Runs just before a commit with the number of objects queued for hashing so far (tests
    /// hold a commit here).
    private var beforeCommitHook: (@Sendable (Int) -> Void)?

    private let cache: DiskCache
    private let scheduler: FillScheduler
    private let verifier: FillVerifier
    private let logger: Logger
    /// Landed blocks are committed at most this often (see `CacheFiller.commitInterval`).
    let interval: Double

    init(cache: DiskCache, scheduler: FillScheduler, verifier: FillVerifier, logger: Logger, interval: Double) {
        self.cache = cache
        self.scheduler = scheduler
        self.verifier = verifier
        self.logger = logger
        self.interval = interval
        let t = Thread { [self] in loop() }  // strong: the thread lives until `stop`
        t.name = "soak-committer"
        t.start()
    }

    var beforeCommit: (@Sendable (Int) -> Void)? {
        get { cond.lock(); defer { cond.unlock() }; return beforeCommitHook }
        set { cond.lock(); beforeCommitHook = newValue; cond.unlock() }
    }

    /// Hands a finished job to the thread (the engine's thread calls this).
    func add(_ l: Landed) {
        cond.lock()
        landed.append(l)
        // Woken only when this changes what the committer waits for: it sleeps on an empty
        // batch, and on a non-empty one until the interval ends, something urgent lands or
        // everything has. A signal per landing (5000 in a prewarm of small/) cost the engine
        // thread a futex wake each and the committer a wakeup each, for nothing.
        if landed.count == 1 || l.urgent || everythingLanded() { cond.signal() }
        cond.unlock()
    }

    /// Stops the thread after it has recorded everything already landed.
    func stop() {
        cond.lock()
        stopping = true
        cond.broadcast()
        while running { cond.wait() }
        cond.unlock()
    }

    private func loop() {
        var last = 0.0
        while true {
            cond.lock()
            while landed.isEmpty && !stopping { cond.wait() }
            // Let a batch build up (unless stopping): one sync covers all of it.
            // Not when nothing else is on its way (the end of a prewarm): waiting would only delay it.
            while !stopping, !landed.contains(where: \.urgent), !everythingLanded(), MonotonicTime.now() - last < interval {
                _ = cond.wait(until: Date(timeIntervalSinceNow: interval - (MonotonicTime.now() - last)))
            }
            last = MonotonicTime.now()
            if landed.isEmpty && stopping {
                running = false
                cond.broadcast()
                cond.unlock()
                return
            }
            let batch = landed
            landed.removeAll()
            let hook = beforeCommitHook
            cond.unlock()
            process(batch, hook: hook)
        }
    }

    /// Every job under way has landed (caller holds `cond`; the scheduler never waits on it).
    /// A job leaves the scheduler when a commit has settled it.
    private func everythingLanded() -> Bool { landed.count >= scheduler.jobCount }

    private func process(_ batch: [Landed], hook: (@Sendable (Int) -> Void)?) {
        var toCommit: [CacheIndex.LandedBlock] = []
        var outcome: [Int: FillError?] = [:]
        var whole: [CachedObject] = []
        let bs = cache.blockSize
        for l in batch {
            guard let job = scheduler.job(l.job) else { continue }
            toCommit += l.blocks
            outcome[l.job] = l.error  // a 412's old version was dropped when it completed
            if l.error == nil, job.first == 0, job.count == job.object.blockCount(blockSize: bs),
               l.blocks.count == job.count {
                whole.append(job.object)
            }
        }
        verifier.prehash(whole)
        hook?(verifier.prehashQueued)
        var accepted = Set<FillScheduler.BlockKey>()
        do {
            let t0 = MonotonicTime.now()
            for b in try cache.commit(toCommit) {
                accepted.insert(FillScheduler.BlockKey(object: b.objectID, gen: b.gen, index: b.index))
            }
            logger.debug("committed \(toCommit.count) blocks in \(Int((MonotonicTime.now() - t0) * 1000)) ms")
        } catch {
            logger.error("could not record landed blocks: \(error)")
            for (j, e) in outcome where e == nil { outcome[j] = .local("could not record blocks: \(error)") }
        }
        // Answer requests, and hash objects now complete. A prewarm's request for a whole object
        // is answered after its MD5 check (`verifyWhenComplete`), so a mismatch is fetched again
        // within the same run; a mount's reads are answered at once.
        let settled = scheduler.settle(outcome, accepted: accepted, check: verifier.checks,
                                       answerAfterCheck: !verifier.background)
        for (id, o) in settled.toCheck {
            let waiters = settled.afterCheck[id] ?? []
            if verifier.verifyWhenComplete(o, waiters: waiters) || waiters.isEmpty { continue }
            // Nothing to check: checked already, or evicted or replaced since its commit.
            let gone = verifier.stillComplete(o) == nil
            for w in waiters { w.done(o, gone ? .evicted(key: o.key) : nil) }
        }
        for a in settled.answers { a.done(a.object, a.error) }
    }
}
