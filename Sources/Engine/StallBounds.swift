/// How long a transfer may stay silent before the worker abandons it and the coordinator
/// retries it (resuming after the bytes already written).
///
/// How it works. Two phases are bounded separately, because they differ by orders of magnitude:
/// the wait for the first byte of a response (the server looking the object up) and each gap
/// between bytes after it (a stream that is flowing). Each bound is `headroom` times the 95th
/// percentile of that phase's times over the last `window` transfers that completed, clamped to
/// the phase's floor and `cap`; until `warmSamples` transfers completed, the first-byte bound is
/// at least `coldFirstByte`, and before any completed the gap bound is its floor. Only completed
/// transfers teach it: a stalled or aborted one would pull the bound towards the very stall it
/// must catch. Each stall of an order doubles the bounds of its next attempt (up to `cap`), as
/// TCP backs off a segment's retransmission timeout, so a server that is slow but alive is
/// waited for longer on each retry instead of being cut off at the same point every time; an
/// unrelated transfer keeps the learned bound.
///
/// Times are seconds in which the transfer was waiting on the server alone (see `StallWatch`):
/// pauses soak makes itself never count. Pure and deterministic: the caller passes every time.
public struct StallBounds: Sendable, Equatable {
    /// What a transfer is waiting for.
    public enum Phase: String, Sendable, Equatable {
        /// The first byte of the response, from the request being sent.
        case firstByte = "first byte"
        /// The next byte, once the response has begun.
        case gap = "next byte"
    }

    /// S3 answers a GET in tens of milliseconds; a second is far beyond a busy server's answer,
    /// and a retry that abandons a slow one costs a single request.
    public static let firstByteFloor = 1.0
    /// A fresh worker's first requests meet a server taking a burst of them at once (every slot
    /// of every worker starts together), before anything is learned: they get more room.
    public static let coldFirstByte = 2.0
    /// Completed transfers after which the learned first-byte bound alone counts.
    public static let warmSamples = 8
    /// A flowing stream's gaps are milliseconds; a second spans a few TCP retransmission timeouts
    /// (200 ms minimum each), and the retry resumes where the bytes stopped.
    public static let gapFloor = 1.0
    /// The old low-speed limit's 20 s: a server silent that long was already taken as stalled,
    /// so no bound learned from a slow server waits longer than soak always did.
    public static let cap = 20.0
    /// A transfer may be this many times slower than the 95th percentile of recent ones before
    /// it is called stalled: slow but living transfers are not cut.
    public static let headroom = 4.0
    /// The percentile of recent times a bound is scaled from: high enough that the usual slow
    /// tail is inside it, low enough that one outlier among `window` does not set it.
    public static let percentile = 0.95
    /// Completed transfers remembered per phase: enough for a 95th percentile to mean something,
    /// few enough to follow a network whose speed changes.
    public static let window = 64

    private var firstByte = Estimate(floor: StallBounds.firstByteFloor, cold: StallBounds.coldFirstByte)
    private var gap = Estimate(floor: StallBounds.gapFloor, cold: StallBounds.gapFloor)

    public init() {}

    /// Seconds of silence in `phase` after which a transfer is stalled; `stalls`: how many
    /// earlier attempts of its order were abandoned as stalled (each doubles the bound).
    public func bound(_ phase: Phase, stalls: Int = 0) -> Double {
        let base = phase == .firstByte ? firstByte.base : gap.base
        // 2^stalls, with the exponent held where the cap is reached anyway.
        return min(StallBounds.cap, base * Double(1 << min(max(stalls, 0), 20)))
    }

    /// A transfer completed: `firstByte` is how long its first byte took, `gap` its longest gap
    /// between bytes (nil when it had none to measure, e.g. a body that came in one piece).
    public mutating func learn(firstByte f: Double?, gap g: Double?) {
        if let f, f.isFinite, f >= 0 { firstByte.add(f) }
        if let g, g.isFinite, g >= 0 { gap.add(g) }
    }

    /// Number of completed transfers behind each bound (for the log).
    public func samples(_ phase: Phase) -> Int {
        phase == .firstByte ? firstByte.samples.count : gap.samples.count
    }

    /// One phase's recent times and the bound they give.
    struct Estimate: Sendable, Equatable {
        let floor: Double
        /// The least bound until `warmSamples` times are known.
        let cold: Double
        /// The last `window` times, oldest overwritten first.
        var samples: [Double] = []
        var next = 0
        /// `headroom` × percentile, clamped; recomputed when a time is added.
        var base: Double

        init(floor: Double, cold: Double) {
            self.floor = floor
            self.cold = cold
            base = max(floor, cold)
        }

        mutating func add(_ t: Double) {
            if samples.count < StallBounds.window {
                samples.append(t)
            } else {
                samples[next] = t
            }
            next = (next + 1) % StallBounds.window
            let sorted = samples.sorted()
            // Nearest rank: the smallest time at least `percentile` of the samples do not exceed.
            let rank = Int((StallBounds.percentile * Double(sorted.count)).rounded(.up))
            let p = sorted[max(0, min(sorted.count, rank) - 1)]
            let least = samples.count < StallBounds.warmSamples ? max(floor, cold) : floor
            base = min(StallBounds.cap, max(least, StallBounds.headroom * p))
        }
    }
}
