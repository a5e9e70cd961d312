import Cache
import Foundation

/// Fill answers, collected across threads.
final class FillResults: @unchecked Sendable {
    private let cond = NSCondition()
    private var done: [(Int64, FillError?)] = []
    func add(_ o: CachedObject, _ e: FillError?) { cond.lock(); done.append((o.id, e)); cond.broadcast(); cond.unlock() }
    /// The answers once there are `n` (or after 20 s, whatever came).
    func wait(for n: Int) -> [(Int64, FillError?)] {
        cond.lock(); defer { cond.unlock() }
        let deadline = Date().addingTimeInterval(20)
        while done.count < n && cond.wait(until: deadline) {}
        return done
    }
}
