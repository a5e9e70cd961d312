/// Opens and preallocates the target files of a worker's next bulk orders on a thread of its own.
///
/// How it works. Starting a transfer opens its target (creating a cache data file, or an
/// unnamed file for a download) and `fallocate`s its range. Both allocate on-disk structures,
/// and ext4 makes an allocation wait while a journal commit writes the bitmaps it changes: with
/// a prewarm's `syncfs` every 0.2 s, a worker's loop stood still, every transfer with it, for
/// up to 73 ms while it started the next wave of transfers (strace of a prewarm of d/: the 16
/// `fallocate`s of a wave began as a commit did). So the loop `request`s the files of the next
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
#if canImport(Glibc)
import Glibc
#endif

final class FilePreparer: @unchecked Sendable {  // @unchecked: `orders`, `wake` and `stopping` are guarded by `lock`
    typealias Target = FetchTarget

    private enum Stage { case queued, preparing, discarded, ready(Target) }

    private let lock = NSLock()
    /// Every order asked for and not yet taken (a discarded one until its preparation ends).
    private var orders: [Int: Stage] = [:]
    /// The loop waits for a target: announce the next one that is ready.
    private var wake = false
    private var stopping = false
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
        lock.lock(); orders[o.id] = .queued; lock.unlock()
        queue.async { [self] in run(o) }
    }

    /// `id`'s target if it is ready (the caller owns its descriptor from then on). If it is not
    /// and `wake`, `onReady` runs once the next target is ready.
    func take(_ id: Int, wake: Bool = false) -> Target? {
        lock.lock(); defer { lock.unlock() }
        if case .ready(let t) = orders[id] {
            orders[id] = nil
            return t
        }
        if wake { self.wake = true }
        return nil
    }

    /// The order will not be started: its target is closed now, or when its preparation ends.
    func discard(_ id: Int) {
        lock.lock()
        var closing: Target?
        switch orders[id] {
        case .preparing: orders[id] = .discarded
        case .ready(let t): closing = t; orders[id] = nil
        default: orders[id] = nil  // queued: never opened
        }
        lock.unlock()
        closing?.release()
    }

    /// Orders asked for and not yet taken or discarded (tests).
    var outstanding: Int {
        lock.lock(); defer { lock.unlock() }
        return orders.count
    }

    /// Ends the thread once the preparation under way is done, and closes every target not taken.
    func stop() {
        lock.lock(); stopping = true; lock.unlock()
        queue.stop()  // the jobs still queued see `stopping` and return
        lock.lock()
        let left = orders.values.compactMap { stage -> Target? in if case .ready(let t) = stage { return t } else { return nil } }
        orders.removeAll()
        lock.unlock()
        for t in left { t.release() }
    }

    private func run(_ o: FetchOrder) {
        lock.lock()
        guard !stopping, case .queued = orders[o.id] else { lock.unlock(); return }  // discarded
        orders[o.id] = .preparing
        lock.unlock()
        let t = prepare(o)
        lock.lock()
        guard !stopping, case .preparing = orders[o.id] else {
            orders[o.id] = nil
            lock.unlock()
            t.release()
            return
        }
        orders[o.id] = .ready(t)
        let announce = wake
        wake = false
        lock.unlock()
        if announce { onReady() }
    }
}
