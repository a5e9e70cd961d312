/// The scheduler's side of the transport's events: accounting, completions, retries and
/// requeues (see `FetchEngine`). Everything here runs on the engine thread under `lock`.
import Foundation
import Logging
import S3
import SoakCore

extension FetchEngine {
    func apply(_ event: TransportEvent) {
        switch event {
        case .progress(let id, let bytes):
            account(id, bytes: bytes)
        case .landed(let id, let first, let crcs):
            // Block indices from the order's original start (a retry starts later).
            guard let job = jobs[id], job.dispatched, let blocks = job.original.blocks else { return }
            let base = blocks.block(at: job.current.start - job.original.start)
            landedLater.append((job.tag, base + first, crcs))
        case .done(let r):
            guard jobs[r.id]?.dispatched == true else { return }
            account(r.id, bytes: r.bytes)
            undispatch(r.id)
            finish(report: r)
        case .lost(let ids, let reason):
            for id in ids { lost(id, reason: reason) }
        }
    }

    /// Adds newly written bytes of an order to the counters.
    func account(_ id: Int, bytes: Int64) {
        guard var job = jobs[id], job.dispatched, bytes > job.reported else { return }
        stats.bytes += bytes - job.reported
        stats.bytesByLane[job.lane.rawValue] += bytes - job.reported
        job.reported = bytes
        jobs[id] = job
    }

    /// The transport no longer holds `id`.
    func undispatch(_ id: Int) {
        guard var job = jobs[id], job.dispatched else { return }
        if job.lane == .bulk { bulkOut -= 1 }
        job.dispatched = false
        jobs[id] = job
    }

    func finish(report r: FetchReport) {
        guard var job = jobs[r.id] else { return }
        stats.getObjectRequests = stats.getObjectRequests ?? [:]
        stats.getObjectRequests![RequestOutcome.label(r.error), default: 0] += 1
        if let lat = r.firstByteLatency, onFetchLatency != nil { latenciesLater.append((lat, job.lane)) }
        guard let err = r.error else {
            jobs[r.id] = nil
            stats.completed += 1
            onCompleteLater.append(FetchCompletion(order: job.original, tag: job.tag, error: nil, crcs: job.crcs + r.crcs))
            return
        }
        if err.isThrottle { stats.throttled += 1 }
        if err.kind == .stalled { job.current.stalls += 1 }  // its next attempt waits longer
        // Resume after the bytes that landed; If-Match keeps them the same version.
        let keep = resumableBytes(job.current, reported: r.bytes, crcs: r.crcs.count)
        job.crcs += r.crcs.prefix(job.current.blockSize == nil ? 0 : r.crcs.count)
        job.current.start += keep
        job.current.fileOffset += keep
        stats.bytes -= r.bytes - keep  // they will be fetched again
        job.attempts += 1
        if err.isPreconditionFailed, let checker = versionCheck, let etag = job.original.etag {
            // Parked (in `jobs`, not queued) until the checker answers; this attempt counted.
            jobs[r.id] = job
            let id = r.id
            checker.ask(bucket: job.original.bucket, key: job.original.key, etag: etag) { [weak self] answer in
                self?.versionAnswered(id, error: err, answer)
            }
            return
        }
        if err.isCredentialRejection { credentialsRejected?() }
        if err.isRetryable, job.current.start <= job.current.end,
           let delay = settings.retry.delay(afterAttempt: job.attempts, retryAfter: err.retryAfter, random: &random) {
            stats.retries += 1
            logger.debug("retrying \(job.original.key) in \(String(format: "%.2f", delay)) s: \(err)")
            jobs[r.id] = job
            queue.push(r.id, lane: job.lane, due: MonotonicTime.now() + delay)
            return
        }
        jobs[r.id] = nil
        stats.failed += 1
        var final = err
        if job.attempts > 1 { final.attempts = job.attempts }
        onCompleteLater.append(FetchCompletion(order: job.original, tag: job.tag, error: final, crcs: job.crcs))
    }

    /// An order whose executor died: requeued from its last reported offset, or failed when it
    /// keeps killing its executors.
    func lost(_ id: Int, reason: String) {
        guard jobs[id]?.dispatched == true else { return }
        undispatch(id)
        guard var job = jobs[id] else { return }
        // An unnamed file died with its executor: start over. A named one keeps its bytes; a
        // block order keeps the blocks whose CRCs arrived before this attempt.
        let reported = job.reported
        let bytes = job.current.blockSize != nil ? 0 : (job.current.isResumable ? reported : 0)
        stats.bytes -= reported - bytes
        job.current.start += bytes
        job.current.fileOffset += bytes
        if job.current.start > job.current.end {
            // Every byte was reported written before it died: still wait for no one.
            jobs[id] = nil
            stats.completed += 1
            onCompleteLater.append(FetchCompletion(order: job.original, tag: job.tag, error: nil, crcs: job.crcs))
            return
        }
        job.attempts += 1
        if job.attempts >= settings.retry.maxAttempts {
            jobs[id] = nil
            stats.failed += 1
            onCompleteLater.append(FetchCompletion(order: job.original, tag: job.tag, error: S3Error(
                kind: .transport(curlCode: -2), operation: "GetObject", bucket: job.original.bucket,
                key: job.original.key,
                message: "the worker process fetching it died \(job.attempts) times (last: \(reason))"),
                crcs: job.crcs))
            return
        }
        jobs[id] = job
        queue.pushFront(id, lane: job.lane)
    }

    /// The checker's answer about an order parked after a 412 (checker's queue): unchanged, it
    /// is retried like any retryable failure, resuming where it was; else it completes.
    func versionAnswered(_ id: Int, error err: S3Error, _ answer: VersionAnswer) {
        lock.lock()
        guard !stopping, let job = jobs[id] else { lock.unlock(); return }
        if answer == .unchanged, job.current.start <= job.current.end,
           let delay = settings.retry.delay(afterAttempt: job.attempts, retryAfter: nil, random: &random) {
            stats.retries += 1
            queue.push(id, lane: job.lane, due: MonotonicTime.now() + delay)
            lock.unlock()
            wake()
            return
        }
        jobs[id] = nil
        stats.failed += 1
        var final = err
        if job.attempts > 1 { final.attempts = job.attempts }
        onCompleteLater.append(FetchCompletion(order: job.original, tag: job.tag, error: final, crcs: job.crcs,
                                               version: answer))
        lock.unlock()
        wake()
    }

    /// How much of a failed attempt a retry keeps: nothing of an unnamed file; whole blocks of a
    /// block order (their CRCs were reported); every contiguous byte otherwise.
    func resumableBytes(_ o: FetchOrder, reported: Int64, crcs: Int) -> Int64 {
        guard o.isResumable else { return 0 }
        guard let blocks = o.blocks else { return reported }
        return min(reported, blocks.offset(ofBlock: crcs))
    }

    /// Hands ready orders to the transport while it has room, highest lane first.
    func dispatch() {
        let now = MonotonicTime.now()
        queue.release(now: now)
        while let lane = queue.topLane() {
            if lane == .bulk, let cap = settings.maxBulkOrders, bulkOut >= cap { break }
            guard transport.freeSlots(for: lane) > 0 else { break }
            guard let (id, _) = queue.pop(now: now) else { break }
            guard var job = jobs[id] else { continue }
            job.current.lane = job.lane
            guard transport.start(job.current) else {
                queue.pushFront(id, lane: job.lane)
                break
            }
            job.dispatched = true
            job.reported = 0  // bytes written from job.current.start, as the transport reports them
            jobs[id] = job
            if job.lane == .bulk { bulkOut += 1 }
        }
    }
}
