/// The committer: one thread that makes what landed durable (one `syncfs`), records it and
/// answers the waiting requests (see `CacheFiller`).
import Crypto
import Engine
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

extension CacheFiller {
    func commitLoop() {
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
    func everythingLanded() -> Bool {
        lock.lock(); defer { lock.unlock() }
        return landed.count >= jobs.count
    }

    func process(_ batch: [Landed]) {
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
                if pending[key] == jid { pending[key] = nil }  // else a later fetch has it
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
}
