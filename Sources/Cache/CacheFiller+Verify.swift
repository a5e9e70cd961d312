/// Integrity checks: complete single-part objects hashed against their ETag's MD5 (see
/// `CacheFiller`), before or after the commit that records them.
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
    /// A request answered after its object's MD5 check.
    struct VerifyWaiter {
        var bucket: String
        var done: Done
    }

    /// Queues a complete, unchecked object for its MD5 check; false when there is nothing to
    /// check (blocks missing, checked already, replaced). `waiters` are answered after it.
    /// A mismatch drops the data and fills the object again for the waiters; a second one
    /// means the ETag is not an MD5.
    func verifyWhenComplete(_ o: CachedObject, waiters: [VerifyWaiter]) -> Bool {
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
    func stillComplete(_ o: CachedObject) -> CachedObject? {
        guard let cur = try? cache.index.object(id: o.id), cur.gen == o.gen, cur.isComplete else { return nil }
        return cur
    }

    /// Queues objects a commit is about to complete (each landed whole, by one order) for
    /// hashing while the commit syncs them to disk: their bytes are in the page cache already,
    /// and the check after the commit then only compares (at the end of a prewarm of d/, 18
    /// objects were hashed after the last sync).
    func prehash(_ objects: [CachedObject]) {
        guard verifyMD5 && !backgroundVerify else { return }
        let hashable = objects.filter(\.etagIsMD5)
        guard !hashable.isEmpty else { return }
        lock.lock()
        prehashPending += hashable
        prehashQueued += hashable.count
        lock.unlock()
        verifyQueues[0].async { [self] in prehashPendingObjects() }
    }

    /// MD5s of objects' data files, hashed side by side (why: docs/BENCHMARKS.md, MD5 checks).
    /// `hashedCount` lets tests see how many were hashed.
    func hashFiles(_ objects: [CachedObject]) -> [String?] {
        lock.lock(); hashedCount += objects.count; lock.unlock()
        return FileMD5.of(files: objects.map { (cache.dataPath($0), $0.size) })
    }

    /// Hashes every object `prehash` queued, `MD5Lanes.width` at a time.
    func prehashPendingObjects() {
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
    func verifyPendingBatch() {
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
}
