import CSys
import Foundation
import SoakCore

/// A serial queue on a thread of its own, for work that must be done but may wait, such as
/// hashing complete objects against their ETag. In background mode the thread runs at the
/// lowest CPU priority (nice 19) and holds each job while `busy()` says readers and fetches are
/// under way, until `maxDeferral` seconds after the job was queued: under constant load the
/// queue still drains, each job at most that late, so it never grows without bound.
package final class IdleQueue: @unchecked Sendable {
    // @unchecked: `jobs`, `running` and `stopping` are guarded by `cond`, which waits (no Mutex).
    private let cond = NSCondition()
    private var jobs: [(queued: Double, run: @Sendable () -> Void)] = []
    private var running = false
    private var stopping = false
    private let busy: (@Sendable () -> Bool)?
    /// Longest a job waits for the process to be idle (30 s: checks stay timely without taking
    /// CPU from a mount's readers in short bursts of load).
    package static let defaultMaxDeferral = 30.0
    let maxDeferral: Double
    /// How often a deferred job checks again.
    static let recheckInterval = 0.1

    /// `busy` nil: jobs run at once at normal priority.
    package init(name: String, background busy: (@Sendable () -> Bool)?, maxDeferral: Double = defaultMaxDeferral) {
        self.busy = busy
        self.maxDeferral = maxDeferral
        let t = Thread { [self] in  // strong: the thread lives until `stop`
            if busy != nil { _ = csys_lower_thread_priority() }
            loop()
        }
        t.name = name
        t.start()
    }

    package func async(_ job: @escaping @Sendable () -> Void) {
        cond.lock(); jobs.append((MonotonicTime.now(), job)); cond.broadcast(); cond.unlock()
    }

    /// Runs what is queued (without waiting for idleness), then ends the thread.
    package func stop() {
        cond.lock()
        stopping = true
        cond.broadcast()
        while !jobs.isEmpty || running { cond.wait() }
        cond.unlock()
    }

    private func loop() {
        while true {
            cond.lock()
            while jobs.isEmpty && !stopping { cond.wait() }
            if jobs.isEmpty { cond.unlock(); return }
            let job = jobs.removeFirst()
            running = true
            cond.unlock()
            if let busy {
                while busy() && MonotonicTime.now() - job.queued < maxDeferral {
                    cond.lock(); let done = stopping; cond.unlock()
                    if done { break }
                    Thread.sleep(forTimeInterval: Self.recheckInterval)
                }
            }
            job.run()
            cond.lock(); running = false; cond.broadcast(); cond.unlock()
        }
    }
}
