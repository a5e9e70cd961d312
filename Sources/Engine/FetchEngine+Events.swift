/// The scheduler's state and its side of the transport's events: accounting, completions,
/// retries and requeues (see `FetchEngine`). Everything here runs inside `FetchEngine.state`'s
/// lock; what must reach callbacks is collected in the `Outbox` and delivered after it.
import Foundation
import Logging
import S3
import SoakCore

extension FetchEngine {
    struct Job: Sendable {
        var original: FetchOrder
        var current: FetchOrder
        var lane: Lane
        var tag: Int
        var attempts = 0
        /// CRCs of the blocks landed by earlier attempts.
        var crcs: [UInt32] = []
        /// Held by the transport (for promotion).
        var dispatched = false
        /// Bytes the transport reported written from `current.start` in this attempt.
        var reported: Int64 = 0
    }

    /// A 412 to put to the version checker once the lock is released.
    struct VersionQuestion {
        var checker: VersionChecker
        var id: Int
        var bucket: String, key: String, etag: String
        var error: S3Error
    }

    /// What a round hands to callbacks outside the lock (`FetchEngine.deliver`).
    struct Outbox {
        var completions: [FetchCompletion] = []
        /// Block landings: (tag, first block, CRCs).
        var landings: [(Int, Int, [UInt32])] = []
        var latencies: [(Double, Lane)] = []
        var versionQuestions: [VersionQuestion] = []
        /// A worker's GET was refused as expired: ask the followed keeper for new keys.
        var credentialsRejected = false
        var onComplete: (@Sendable (FetchCompletion) -> Void)?
        var onLanded: (@Sendable (Int, Int, [UInt32]) -> Void)?
        var onFetchLatency: (@Sendable (Double, Lane) -> Void)?
        var refreshCredentials: (@Sendable () -> Void)?
    }

    /// The scheduler's state: its jobs and queue, counters, callbacks, and what the current
    /// round will deliver.
    struct Scheduler {
        let settings: EngineSettings
        let transport: FetchTransport
        let logger: Logger
        var queue = WorkQueue<Int>()
        var jobs: [Int: Job] = [:]
        var nextID = 1
        var stats = EngineStats()
        var random = SystemRandomNumberGenerator()
        var started = false
        var stopping = false
        /// The event thread has ended (signalled through `FetchEngine.stoppedCond`).
        var ended = false
        /// Unsubscribes from credential keepers (`follow`).
        var unfollow: [@Sendable () -> Void] = []
        /// Asks the followed keeper for new keys now (a worker's GET was refused as expired).
        var credentialsRejected: (@Sendable () -> Void)?
        /// Bulk orders the transport holds (for `EngineSettings.maxBulkOrders`).
        var bulkOut = 0
        var versionCheck: VersionChecker?
        var onComplete: (@Sendable (FetchCompletion) -> Void)?
        var onLanded: (@Sendable (Int, Int, [UInt32]) -> Void)?
        var onFetchLatency: (@Sendable (Double, Lane) -> Void)?
        /// This round's results, handed out by `takeOutbox`.
        var outbox = Outbox()

        init(settings: EngineSettings, transport: FetchTransport, logger: Logger) {
            self.settings = settings; self.transport = transport; self.logger = logger
        }

        /// This round's results with the callbacks to hand them to; starts the next round empty.
        mutating func takeOutbox() -> Outbox {
            var out = outbox
            outbox = Outbox()
            out.onComplete = onComplete
            out.onLanded = onLanded
            out.onFetchLatency = onFetchLatency
            out.refreshCredentials = credentialsRejected
            return out
        }

        /// See `FetchEngine.promote`.
        mutating func promote(_ id: Int, to lane: Lane) -> Bool {
            guard var job = jobs[id], lane < job.lane else { return false }
            if job.dispatched && job.lane == .bulk { bulkOut -= 1 }
            job.lane = lane
            job.current.lane = lane
            jobs[id] = job
            if queue.remove(where: { $0 == id }) != nil {
                queue.pushFront(id, lane: lane)
            } else if job.dispatched {
                transport.promote(id, to: lane)
            }
            return true
        }
        mutating func apply(_ event: TransportEvent) {
            switch event {
            case .progress(let id, let bytes):
                account(id, bytes: bytes)
            case .landed(let id, let first, let crcs):
                // Block indices from the order's original start (a retry starts later).
                guard let job = jobs[id], job.dispatched, let blocks = job.original.blocks else { return }
                let base = blocks.block(at: job.current.start - job.original.start)
                outbox.landings.append((job.tag, base + first, crcs))
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
        mutating func account(_ id: Int, bytes: Int64) {
            guard var job = jobs[id], job.dispatched, bytes > job.reported else { return }
            stats.bytes += bytes - job.reported
            stats.bytesByLane[job.lane.rawValue] += bytes - job.reported
            job.reported = bytes
            jobs[id] = job
        }

        /// The transport no longer holds `id`.
        mutating func undispatch(_ id: Int) {
            guard var job = jobs[id], job.dispatched else { return }
            if job.lane == .bulk { bulkOut -= 1 }
            job.dispatched = false
            jobs[id] = job
        }

        mutating func finish(report r: FetchReport) {
            guard var job = jobs[r.id] else { return }
            stats.getObjectRequests = stats.getObjectRequests ?? [:]
            stats.getObjectRequests![RequestOutcome.label(r.error), default: 0] += 1
            if let lat = r.firstByteLatency, onFetchLatency != nil { outbox.latencies.append((lat, job.lane)) }
            guard let err = r.error else {
                jobs[r.id] = nil
                stats.completed += 1
                outbox.completions.append(FetchCompletion(order: job.original, tag: job.tag, error: nil, crcs: job.crcs + r.crcs))
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
                outbox.versionQuestions.append(VersionQuestion(checker: checker, id: r.id, bucket: job.original.bucket,
                                                               key: job.original.key, etag: etag, error: err))
                return
            }
            if err.isCredentialRejection { outbox.credentialsRejected = true }
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
            outbox.completions.append(FetchCompletion(order: job.original, tag: job.tag, error: final, crcs: job.crcs))
        }

        /// An order whose executor died: requeued from its last reported offset, or failed when it
        /// keeps killing its executors.
        mutating func lost(_ id: Int, reason: String) {
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
                outbox.completions.append(FetchCompletion(order: job.original, tag: job.tag, error: nil, crcs: job.crcs))
                return
            }
            job.attempts += 1
            if job.attempts >= settings.retry.maxAttempts {
                jobs[id] = nil
                stats.failed += 1
                outbox.completions.append(FetchCompletion(order: job.original, tag: job.tag, error: S3Error(
                    kind: .transport(curlCode: -2), operation: "GetObject", bucket: job.original.bucket,
                    key: job.original.key,
                    message: "the worker process fetching it died \(job.attempts) times (last: \(reason))"),
                    crcs: job.crcs))
                return
            }
            jobs[id] = job
            queue.pushFront(id, lane: job.lane)
        }

        /// See `FetchEngine.versionAnswered`; false when the order is gone (or the engine stopping).
        mutating func versionAnswered(_ id: Int, error err: S3Error, _ answer: VersionAnswer) -> Bool {
            guard !stopping, let job = jobs[id] else { return false }
            if answer == .unchanged, job.current.start <= job.current.end,
               let delay = settings.retry.delay(afterAttempt: job.attempts, retryAfter: nil, random: &random) {
                stats.retries += 1
                queue.push(id, lane: job.lane, due: MonotonicTime.now() + delay)
                return true
            }
            jobs[id] = nil
            stats.failed += 1
            var final = err
            if job.attempts > 1 { final.attempts = job.attempts }
            outbox.completions.append(FetchCompletion(order: job.original, tag: job.tag, error: final, crcs: job.crcs,
                                                      version: answer))
            return true
        }

        /// How much of a failed attempt a retry keeps: nothing of an unnamed file; whole blocks of a
        /// block order (their CRCs were reported); every contiguous byte otherwise.
        func resumableBytes(_ o: FetchOrder, reported: Int64, crcs: Int) -> Int64 {
            guard o.isResumable else { return 0 }
            guard let blocks = o.blocks else { return reported }
            return min(reported, blocks.offset(ofBlock: crcs))
        }
    }
}
