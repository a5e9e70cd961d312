/// The worker pool's processes: spawning, replacing dead workers, and sizing the pool to the
/// optimizer's target (see `WorkerPoolTransport`).
import CSys
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

extension WorkerPoolTransport {
    /// Reaps a dead worker and reports its orders lost (the scheduler requeues them from their
    /// last reported offset).
    func workerDied(_ w: WorkerProcess, reason: String) {
        if !w.exited { w.terminate(force: true, grace: 0.5) }
        if !stopped { restarts += 1 }
        let ids = Array(w.inflight.keys)
        if !ids.isEmpty { events.append(.lost(ids: ids, reason: reason)) }
        w.inflight.removeAll()
        w.pending.removeAll()
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

    func optimizeIfDue(_ now: Double, backlog: Bool) {
        let elapsed = now - windowStart
        guard elapsed >= settings.optimizationInterval else { return }
        let lat = windowLatencies.sorted()
        let sample = ThroughputSample(bytes: windowBytes, seconds: elapsed,
                                      workers: workers.filter { !$0.retiring && !$0.exited }.count,
                                      throttled: windowThrottled, errors: windowErrors,
                                      latencyP50: lat.isEmpty ? nil : lat[lat.count / 2],
                                      queuedWork: backlog)
        rate = Double(windowBytes) / elapsed
        let before = optimizer.target
        let target = optimizer.decide(sample)
        if target != before {
            logger.debug("optimizer: \(before) → \(target) workers at \(Int(rate / 1e6)) MB/s")
            if let rate = perWorkerRate(workers: target) {
                for w in workers where !w.exited { try? w.send(.rate(bytesPerSecond: rate)) }
            }
        }
        windowStart = now; windowBytes = 0; windowThrottled = 0; windowErrors = 0; windowLatencies.removeAll()
    }

    /// Spawns or retires workers to match the optimizer's target.
    func balanceWorkers() {
        guard !stopped else { return }
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
