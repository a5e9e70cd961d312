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
/// taken.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class FilePreparer: @unchecked Sendable {  // @unchecked: state is guarded by `cond`
    /// An opened target: `fd` (-1 with `errno` when the open failed) and whether it is O_DIRECT.
    struct Target: Equatable, Sendable {
        var fd: Int32
        var direct: Bool
        var errno: Int32 = 0
    }

    private let cond = NSCondition()
    private var queue: [FetchOrder] = []
    private var ready: [Int: Target] = [:]
    /// The order being prepared now, and whether it was discarded meanwhile.
    private var current: Int?
    private var currentDiscarded = false
    private var stopping = false
    private var running = true
    /// The loop waits for a target: announce the next one that is ready.
    private var wake = false
    private let prepare: @Sendable (FetchOrder) -> Target
    private let onReady: @Sendable () -> Void

    /// `prepare` opens (and preallocates) an order's target; `onReady` runs after each.
    init(prepare: @escaping @Sendable (FetchOrder) -> Target, onReady: @escaping @Sendable () -> Void) {
        self.prepare = prepare
        self.onReady = onReady
        let t = Thread { self.loop() }  // a cycle until `stop` ends the thread
        t.name = "soak-file-preparer"
        t.start()
    }

    /// Queues `o`'s target to be prepared after those asked for before.
    func request(_ o: FetchOrder) {
        cond.lock()
        queue.append(o)
        cond.broadcast()
        cond.unlock()
    }

    /// `id`'s target if it is ready (the caller owns its descriptor from then on). If it is not
    /// and `wake`, `onReady` runs once the next target is ready.
    func take(_ id: Int, wake: Bool = false) -> Target? {
        cond.lock(); defer { cond.unlock() }
        if let t = ready.removeValue(forKey: id) { return t }
        if wake { self.wake = true }
        return nil
    }

    /// The order will not be started: its target is closed now, or when its preparation ends.
    func discard(_ id: Int) {
        cond.lock()
        queue.removeAll { $0.id == id }
        let t = ready.removeValue(forKey: id)
        if current == id { currentDiscarded = true }
        cond.unlock()
        if let t, t.fd >= 0 { close(t.fd) }
    }

    /// Orders asked for and not yet taken or discarded (tests).
    var outstanding: Int {
        cond.lock(); defer { cond.unlock() }
        return queue.count + ready.count + (current == nil ? 0 : 1)
    }

    /// Ends the thread once the preparation under way is done, and closes every target not taken.
    func stop() {
        cond.lock()
        stopping = true
        queue.removeAll()
        cond.broadcast()
        while running { cond.wait() }
        let left = ready.values
        ready.removeAll()
        cond.unlock()
        for t in left where t.fd >= 0 { close(t.fd) }
    }

    private func loop() {
        cond.lock()
        while true {
            while queue.isEmpty && !stopping { cond.wait() }
            if stopping { break }
            let o = queue.removeFirst()
            current = o.id
            currentDiscarded = false
            cond.unlock()
            let t = prepare(o)
            cond.lock()
            current = nil
            if currentDiscarded || stopping {
                if t.fd >= 0 { close(t.fd) }
            } else {
                ready[o.id] = t
                if wake {
                    wake = false
                    cond.unlock()
                    onReady()
                    cond.lock()
                }
            }
        }
        running = false
        cond.broadcast()
        cond.unlock()
    }
}
