/// Opens and preallocates the target files of a worker's next bulk orders on a thread of its own.
///
/// How it works. Starting a transfer opens its target (creating a cache data file, or an
/// unnamed file for a download) and `fallocate`s its range. Both allocate on-disk structures,
/// and ext4 makes an allocation wait while a journal commit writes the bitmaps it changes: with
/// a prewarm's `syncfs` once per commit interval, a worker's loop stood still, every transfer
/// with it, while it started the next wave of transfers (the `fallocate`s of a wave began as a
/// commit did; docs/BENCHMARKS.md, write path). So the loop `request`s the files of the next
/// bulk orders ahead of time; this thread prepares them in that order; the loop `take`s a
/// prepared file when a slot frees up. When the loop found the next one not ready yet
/// (`take(_:wake:)`), the thread calls `onReady` (which wakes the loop's poll) as soon as it
/// is; otherwise the loop finds it on a later turn, without a wakeup per file. Orders of the
/// read lanes are opened inline: they are small and must not queue behind bulk ones.
///
/// Bounded: the loop asks for at most one slot-count of orders ahead. A file is never leaked:
/// `discard` closes it (now, or once its preparation ends), and `stop` closes every file not
/// taken. The thread is an `IdleQueue` (serial, normal priority).
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class FilePreparer: Sendable {
    typealias Target = FetchTarget

    private enum Stage { case queued, preparing, discarded, ready(Target) }

    private struct State {
        /// Every order asked for and not yet taken (a discarded one until its preparation ends).
        var orders: [Int: Stage] = [:]
        /// The loop waits for a target: announce the next one that is ready.
        var wake = false
        var stopping = false
    }
    private let state = Mutex(State())
    private let queue = IdleQueue(name: "soak-file-preparer", background: nil)
    private let prepare: @Sendable (FetchOrder) -> Target
    private let onReady: @Sendable () -> Void

    /// `prepare` opens (and preallocates) an order's target; `onReady` wakes a waiting taker.
    init(prepare: @escaping @Sendable (FetchOrder) -> Target, onReady: @escaping @Sendable () -> Void) {
        self.prepare = prepare
        self.onReady = onReady
    }

    /// Queues `o`'s target to be prepared after those asked for before.
    func request(_ o: FetchOrder) {
        state.withLock { $0.orders[o.id] = .queued }
        queue.async { [self] in run(o) }
    }

    /// `id`'s target if it is ready (the caller owns its descriptor from then on). If it is not
    /// and `wake`, `onReady` runs once the next target is ready.
    func take(_ id: Int, wake: Bool = false) -> Target? {
        state.withLock { s in
            if case .ready(let t) = s.orders[id] {
                s.orders[id] = nil
                return t
            }
            if wake { s.wake = true }
            return nil
        }
    }

    /// The order will not be started: its target is closed now, or when its preparation ends.
    func discard(_ id: Int) {
        let closing = state.withLock { s -> Target? in
            switch s.orders[id] {
            case .preparing: s.orders[id] = .discarded
            case .ready(let t): s.orders[id] = nil; return t
            default: s.orders[id] = nil  // queued: never opened
            }
            return nil
        }
        closing?.release()
    }

    /// Orders asked for and not yet taken or discarded (tests).
    var outstanding: Int { state.withLock { $0.orders.count } }

    /// Ends the thread once the preparation under way is done, and closes every target not taken.
    func stop() {
        state.withLock { $0.stopping = true }
        queue.stop()  // the jobs still queued see `stopping` and return
        let left = state.withLock { s -> [Target] in
            let ready = s.orders.values.compactMap { stage -> Target? in
                if case .ready(let t) = stage { return t } else { return nil }
            }
            s.orders.removeAll()
            return ready
        }
        for t in left { t.release() }
    }

    private func run(_ o: FetchOrder) {
        let go = state.withLock { s -> Bool in
            guard !s.stopping, case .queued = s.orders[o.id] else { return false }  // discarded
            s.orders[o.id] = .preparing
            return true
        }
        guard go else { return }
        let t = prepare(o)
        let (keep, announce) = state.withLock { s -> (Bool, Bool) in
            guard !s.stopping, case .preparing = s.orders[o.id] else {
                s.orders[o.id] = nil
                return (false, false)
            }
            s.orders[o.id] = .ready(t)
            defer { s.wake = false }
            return (true, s.wake)
        }
        if !keep { t.release(); return }
        if announce { onReady() }
    }
}
