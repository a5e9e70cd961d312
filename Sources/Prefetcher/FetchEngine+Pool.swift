/// The engine's process pool: spawning, replacing dead workers, and sizing the pool to the
/// optimizer's target (see `FetchEngine`).
import CSys
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

extension FetchEngine {
    /// Requeues a dead worker's orders from their last reported offset.
    func workerDied(_ w: WorkerProcess, reason: String) {
        if !w.exited { w.terminate(force: true, grace: 0.5) }
        if !stopping { stats.workerRestarts += 1 }
        for (id, reported) in w.inflight {
            guard var job = jobs[id] else { continue }
            // An unnamed file died with its worker: start over. A named one keeps its bytes; a
            // block order keeps the blocks whose CRCs arrived before this attempt.
            let bytes = job.current.blockSize != nil ? 0 : (job.current.isResumable ? reported : 0)
            stats.bytes -= reported - bytes
            job.current.start += bytes
            job.current.fileOffset += bytes
            job.worker = nil
            jobs[id] = job
            if job.current.start > job.current.end {
                // Every byte was reported written before it died: still wait for no one.
                jobs[id] = nil
                stats.completed += 1
                onCompleteLater.append(FetchCompletion(order: job.original, tag: job.tag, error: nil, crcs: job.crcs))
                continue
            }
            // An order that keeps killing its workers must not be retried forever.
            job.attempts += 1
            jobs[id] = job
            if job.attempts >= settings.retry.maxAttempts {
                jobs[id] = nil
                stats.failed += 1
                onCompleteLater.append(FetchCompletion(order: job.original, tag: job.tag, error: S3Error(
                    kind: .transport(curlCode: -2), operation: "GetObject", bucket: job.original.bucket,
                    key: job.original.key,
                    message: "the worker process fetching it died \(job.attempts) times (last: \(reason))"),
                    crcs: job.crcs))
            } else {
                queue.pushFront(id, lane: job.lane)
            }
        }
        w.inflight.removeAll()
        workers.removeAll { $0 === w }
        // A replaced worker is a retry of its orders, not a failure: debug level.
        if reason != "retired" { logger.debug("worker \(w.pid) \(reason); its work was requeued") }
    }

    func spawnWorker() throws {
        let w = try WorkerProcess.spawn(executable: executable, config: workerConfig)
        if let rate = perWorkerRate(workers: optimizer.target) { try? w.send(.rate(bytesPerSecond: rate)) }
        workers.append(w)
    }

    func perWorkerRate(workers n: Int) -> Int64? {
        RateSplit.perWorkerBytesPerSecond(maxBytesPerSecond: settings.maxBytesPerSecond, workers: max(n, 1))
    }

    func optimizeIfDue(_ now: Double) {
        let elapsed = now - windowStart
        guard elapsed >= settings.optimizationInterval else { return }
        let lat = windowLatencies.sorted()
        let sample = ThroughputSample(bytes: windowBytes, seconds: elapsed,
                                      workers: workers.filter { !$0.retiring && !$0.exited }.count,
                                      throttled: windowThrottled, errors: windowErrors,
                                      latencyP50: lat.isEmpty ? nil : lat[lat.count / 2],
                                      queuedWork: queue.readyCount > 0)
        stats.rate = Double(windowBytes) / elapsed
        let before = optimizer.target
        let target = optimizer.decide(sample)
        if target != before {
            logger.debug("optimizer: \(before) → \(target) workers at \(Int(stats.rate / 1e6)) MB/s")
            if let rate = perWorkerRate(workers: target) {
                for w in workers where !w.exited { try? w.send(.rate(bytesPerSecond: rate)) }
            }
        }
        windowStart = now; windowBytes = 0; windowThrottled = 0; windowErrors = 0; windowLatencies.removeAll()
    }

    /// Spawns or retires workers to match the optimizer's target.
    func balanceWorkers() {
        let target = optimizer.target
        var active = workers.filter { !$0.retiring && !$0.exited }
        while active.count < target && spawnFailures < 5 {
            do { try spawnWorker(); active = workers.filter { !$0.retiring && !$0.exited } }
            catch { spawnFailures += 1; logger.error("could not start a worker: \(error)"); break }
        }
        if active.count > target {
            // Retire the least loaded: it stops getting work and exits when idle.
            for w in active.sorted(by: { $0.inflight.count < $1.inflight.count }).prefix(active.count - target) {
                w.retiring = true
            }
        }
        for w in workers where w.retiring && w.inflight.isEmpty && !w.exited {
            w.terminate(force: false, grace: 1)
            workerDied(w, reason: "retired")
        }
    }
}
