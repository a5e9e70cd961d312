/// Injectable time for anything that waits or measures: retries, rate limits, the optimizer.
///
/// How it works: production code uses `SystemClock` (CLOCK_MONOTONIC, via `MonotonicTime`, and
/// `nanosleep` resumed after signal interruptions, by `Syscall.sleep`). Tests use `ManualClock`,
/// whose `sleep` returns immediately after advancing its own time and recording the request, so
/// code that backs off for minutes is tested in microseconds and the waits can be asserted exactly.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// Monotonic seconds and blocking sleep.
public protocol SoakClock: Sendable {
    /// Monotonic seconds from an arbitrary origin; only differences are meaningful.
    func now() -> Double
    /// Blocks the calling thread for `seconds` (≤ 0 or NaN: returns at once).
    func sleep(seconds: Double)
}

/// The real clock: CLOCK_MONOTONIC and `nanosleep`.
public struct SystemClock: SoakClock {
    /// Longest single sleep; keeps the conversion to `timespec` in range (a day is plenty).
    static let maxSleepSeconds: Double = 86_400

    public init() {}

    public func now() -> Double { MonotonicTime.now() }

    public func sleep(seconds: Double) {
        guard seconds > 0 else { return }  // also false for NaN
        let s = min(seconds, SystemClock.maxSleepSeconds)
        let whole = s.rounded(.down)
        Syscall.sleep(timespec(tv_sec: Int(whole), tv_nsec: Int((s - whole) * 1e9)))
    }
}

/// A clock for tests: time moves only when told to, and `sleep` advances it and is recorded.
public final class ManualClock: SoakClock, Sendable {
    private struct State {
        var current: Double
        var recorded: [Double] = []
    }
    private let state: Mutex<State>

    public init(start: Double = 0) { state = Mutex(State(current: start)) }

    public func now() -> Double { state.withLock { $0.current } }

    /// Records `seconds` and advances time by it (negative or NaN advances by 0).
    public func sleep(seconds: Double) {
        state.withLock {
            $0.recorded.append(seconds)
            if seconds > 0 { $0.current += seconds }
        }
    }

    /// Moves time forward without recording a sleep.
    public func advance(by seconds: Double) {
        state.withLock { if seconds > 0 { $0.current += seconds } }
    }

    /// Every `sleep` request so far, in order.
    public var sleeps: [Double] { state.withLock { $0.recorded } }

    /// Sum of all positive sleeps.
    public var totalSlept: Double { state.withLock { $0.recorded.filter { $0 > 0 }.reduce(0, +) } }
}
