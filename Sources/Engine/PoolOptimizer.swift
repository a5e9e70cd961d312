/// Sizes the pool of worker processes by hill-climbing on measured throughput.
///
/// How it works. The engine calls `decide` once per interval with what that interval achieved
/// (bytes, seconds, workers that ran, SlowDown count, errors, first-byte latency, whether work
/// was waiting) and runs `target` workers. The optimizer is a small state machine:
///
/// * Measuring. After a resize the first interval is discarded (spawn and ramp-up), then samples
///   are averaged until the mean is known to ±`maxRelativeStandardError` (at least
///   `measureIntervals`, at most `maxMeasureIntervals`): quiet links decide in 3 intervals, noisy
///   ones wait for more evidence instead of drifting. Samples taken while the pool is not at
///   `target`, or with no queued work (idle workers do not measure capacity), are not
///   measurements.
/// * Climbing. The best-known size is the anchor. An up-probe (anchor + step) is accepted when
///   its mean beats the anchor by more than `improvementThreshold` (5%): it becomes the anchor
///   and the climb continues. The step doubles (1, 2, 4… up to `maxStep`, never more than the
///   current size) while each added worker still brings ≥ `fastGrowthEfficiency` of the average
///   per-worker rate (far from the plateau), and falls back to 1 otherwise.
/// * Plateau. A probe that does not help is undone: back to the anchor, then hold for
///   `holdIntervals`. When a hold ends the optimizer probes again, alternating up (+1) and down
///   (-1, kept if within the threshold): a two-sided hill climb, so noise that let the pool drift
///   up is undone and a curve that shifts up is found. Each consecutive failed probe doubles the
///   hold (up to `maxHoldIntervals`), so a settled pool rarely pays for probes.
/// * Trimming. A multi-worker step may overshoot the knee (4 → 8 when 6 is enough), and a pool
///   may start past it. When such a step scaled poorly, or the first probe above a size not yet
///   compared with the size below it fails, the optimizer steps down one worker at a time while
///   throughput stays within `improvementThreshold` of the rate where trimming began, and
///   settles on the smallest such size.
/// * Shrinking. While holding, the anchor's rate is smoothed (EWMA, `ewmaAlpha`). If each of
///   the last `measureIntervals` samples is `dropFraction` below the smoothed peak (a sustained
///   fall, judged on raw samples because the EWMA lags), or first-byte latency grows
///   `latencyRiseFactor`× with no throughput gain, a trim tests whether fewer workers do as well;
///   if not, it is undone.
/// * Throttling. Any SlowDown in an interval halves the pool (multiplicative decrease), holds
///   for `throttleHoldIntervals`, then climbs one worker at a time up to below the size that was
///   throttled (a ceiling remembered for `throttleMemoryIntervals`). SlowDowns reported while the
///   pool is still larger than the target, or in the interval right after halving, come from
///   requests made before the cut and are not counted again.
/// * Speed cap. With `maxBytesPerSecond` the pool never grows once the smoothed rate is at
///   `capGrowFraction` (95%) of the cap, sizes steps to just reach it, and sheds a worker when the
///   rate is `capShrinkFraction` above it.
/// * No queued work: never grow. The target always stays within [minWorkers, maxWorkers].
///
/// The result is deterministic for a given sequence of samples; `lastReason` says why the last
/// decision was made (for logs and tests).
import SoakCore

public struct PoolOptimizer: Sendable {
    // MARK: Tunables

    /// A size must beat the one it is compared with by this much to count: below it is noise.
    public static let improvementThreshold = 0.05
    /// Intervals discarded after a resize: new workers are still spawning and ramping up.
    public static let settleIntervals = 1
    /// Fewest samples averaged before judging a size (and the sustained-drop window).
    public static let measureIntervals = 3
    /// Most samples a judgement may wait for on a noisy link: bounds how long a probe lasts.
    public static let maxMeasureIntervals = 8
    /// Keep measuring until the mean's standard error is at most this fraction of it, so the
    /// 5% decision stays about 2.5σ whatever the noise (±5% noise: 3 samples; ±10%: ~8).
    public static let maxRelativeStandardError = 0.02
    /// EWMA weight of a new sample at the anchor: about 3 intervals of memory.
    public static let ewmaAlpha = 0.3
    /// Intervals to hold after a failed probe before probing again.
    public static let holdIntervals = 8
    /// Cap on the doubling hold. Probes alternate direction, so a curve that shifts up is
    /// noticed within about twice this (≈ 2 min at 2 s intervals); a probe costs ~5 intervals.
    public static let maxHoldIntervals = 32
    /// Largest climbing step: bounds the overshoot a single probe can cause.
    public static let maxStep = 8
    /// Marginal gain per added worker, relative to the average per-worker rate, above which the
    /// curve is still near-linear and the step may double.
    public static let fastGrowthEfficiency = 0.7
    /// Hold after a throttle-halving: S3 needs time to scale its partitions.
    public static let throttleHoldIntervals = 15
    /// How long the size that drew SlowDown stays off limits.
    public static let throttleMemoryIntervals = 150
    /// Smoothed rate below (1 - this) × its peak means throughput fell: test fewer workers.
    public static let dropFraction = 0.25
    /// First-byte latency this many times its baseline without throughput gain: test fewer workers.
    public static let latencyRiseFactor = 2.0
    /// Do not grow once the rate reaches this fraction of the speed cap.
    public static let capGrowFraction = 0.95
    /// Shed a worker when the rate is this far above the speed cap.
    public static let capShrinkFraction = 1.10
    /// After this many intervals in which the pool did not reach `target` (e.g. spawns fail),
    /// adopt the pool's real size rather than waiting forever.
    public static let maxUnreachedIntervals = 10

    /// Why the last decision was made.
    public enum Reason: String, Sendable, Equatable {
        case starting, ignoredSample, waitingForPool, adoptedPoolSize, settling, measuring
        case noQueuedWork, errors, holding, atMaxWorkers, atSpeedCap, aboveSpeedCap
        case probingUp, probingDown, improved, plateau, trimming, trimAccepted, trimUndone
        case throughputFell, latencyRose, throttled, throttleBackoff, throttleCeiling
    }

    // MARK: State

    public let config: OptimizerConfig
    /// Workers the pool should run.
    public private(set) var target: Int
    public private(set) var lastReason: Reason = .starting

    private enum Probe: Sendable {
        /// Measuring with nothing to compare against (start, after throttling or the cap).
        case start
        /// anchor + step; accepted if clearly better than the anchor.
        case up
        /// anchor - 1; accepted if within the threshold of `reference`. `thenClimb`: whether to
        /// climb on (rather than hold) when the trim is undone.
        case down(reference: Double, thenClimb: Bool)
    }

    private enum Phase: Sendable {
        case measuring(Probe)
        case holding(remaining: Int)
        case backoff(remaining: Int)
    }

    /// The best-known size and its smoothed behaviour.
    private struct Anchor: Sendable {
        var size: Int
        var rate: Double
        var peak: Double
        /// Whether one worker fewer is known to be clearly worse. False after a multi-worker step
        /// or a start measurement: the size may be past the knee, so a failed probe trims.
        var verifiedFromBelow: Bool
        var latency: Double?
        var latencyBaseline: Double?
        var rateAtLatencyBaseline: Double
        /// The last few raw rates while holding here, newest last (sustained-drop detection).
        var recent: [Double] = []
    }

    private var phase: Phase = .measuring(.start)
    private var anchor: Anchor?
    private var settle = PoolOptimizer.settleIntervals
    private var sum = 0.0, sumSquares = 0.0, count = 0, latencySum = 0.0, latencyCount = 0
    private var nextStep = 1
    private var failedProbes = 0
    /// Hold expiries alternate between probing up and probing down (two-sided hill climb).
    private var probeDownNext = false
    private var unreached = 0
    private var lastResizeWasThrottle = false
    private var throttleCeiling: Int?
    private var intervalsSinceThrottle = Int.max

    public init(config: OptimizerConfig, initialWorkers: Int) {
        self.config = config
        self.target = min(max(initialWorkers, config.minWorkers), config.maxWorkers)
    }

    // MARK: Deciding

    /// Takes one interval's sample and returns the new target worker count.
    public mutating func decide(_ s: ThroughputSample) -> Int {
        guard s.seconds.isFinite, s.seconds > 0, s.bytes >= 0, s.workers >= 0 else {
            lastReason = .ignoredSample
            return target
        }
        if intervalsSinceThrottle < Int.max { intervalsSinceThrottle += 1 }
        if intervalsSinceThrottle >= PoolOptimizer.throttleMemoryIntervals { throttleCeiling = nil }
        let rate = s.bytesPerSecond

        // 1. SlowDown beats everything, unless it is an echo of requests made before the last cut.
        let echo = s.workers > target || (lastResizeWasThrottle && settle > 0)
        if s.throttled > 0 && !echo {
            let throttledAt = min(s.workers, target)
            throttleCeiling = max(config.minWorkers, throttledAt - 1)
            intervalsSinceThrottle = 0
            anchor = nil; nextStep = 1; failedProbes = 0
            phase = .backoff(remaining: PoolOptimizer.throttleHoldIntervals)
            resize(to: target / 2, throttle: true)
            lastReason = .throttled
            return target
        }

        // 2. Only samples of a pool at `target` measure `target`.
        if s.workers != target {
            unreached += 1
            if unreached >= PoolOptimizer.maxUnreachedIntervals {
                resize(to: s.workers)
                settle = 0; anchor = nil; nextStep = 1
                phase = .measuring(.start)
                lastReason = .adoptedPoolSize
            } else {
                lastReason = .waitingForPool
            }
            return target
        }
        unreached = 0
        if settle > 0 {
            settle -= 1
            lastReason = .settling
            return target
        }

        switch phase {
        case .backoff(let remaining):
            if remaining > 1 {
                phase = .backoff(remaining: remaining - 1)
            } else {
                phase = .measuring(.start)
                resetMeasurement()
            }
            lastReason = .throttleBackoff

        case .holding(let remaining):
            if s.queuedWork {
                updateAnchor(rate: rate, latency: s.latencyP50)
                if shrinkWhileHolding() { return target }
            }
            if remaining > 1 {
                phase = .holding(remaining: remaining - 1)
                lastReason = s.queuedWork ? .holding : .noQueuedWork
            } else if probeDownNext && s.queuedWork && target > config.minWorkers, let a = anchor {
                // Check that the size below is still clearly worse; noise may have let us drift up.
                probeDownNext = false
                startTrim(reference: a.rate, thenClimb: false)
                lastReason = .probingDown
            } else {
                probeDownNext = true
                tryGrow(s)
            }

        case .measuring(let probe):
            guard s.queuedWork else {
                lastReason = .noQueuedWork
                return target
            }
            sum += rate; sumSquares += rate * rate; count += 1
            if let l = s.latencyP50, l.isFinite { latencySum += l; latencyCount += 1 }
            guard measurementIsConclusive() else {
                lastReason = .measuring
                return target
            }
            judge(probe, measured: sum / Double(count),
                  latency: latencyCount > 0 ? latencySum / Double(latencyCount) : nil, s)
        }
        return target
    }

    /// A measurement of `target` is complete: accept or undo the probe.
    private mutating func judge(_ probe: Probe, measured: Double, latency: Double?, _ s: ThroughputSample) {
        let threshold = PoolOptimizer.improvementThreshold
        switch probe {
        case .start:
            setAnchor(rate: measured, latency: latency, verifiedFromBelow: target <= config.minWorkers)
            tryGrow(s)

        case .up:
            guard let a = anchor else { setAnchor(rate: measured, latency: latency, verifiedFromBelow: false); tryGrow(s); return }
            if measured > a.rate * (1 + threshold) {
                let added = target - a.size
                let perWorker = a.rate / Double(a.size)
                let efficiency = perWorker > 0 ? (measured - a.rate) / Double(added) / perWorker : 1
                failedProbes = 0
                setAnchor(rate: measured, latency: latency, verifiedFromBelow: added == 1)
                if added > 1 && efficiency < PoolOptimizer.fastGrowthEfficiency && target > config.minWorkers {
                    // The step crossed the knee somewhere: find the smallest size that does as well.
                    startTrim(reference: measured, thenClimb: true)
                    lastReason = .trimming
                    return
                }
                nextStep = efficiency >= PoolOptimizer.fastGrowthEfficiency
                    ? min(nextStep * 2, PoolOptimizer.maxStep, target) : 1
                lastReason = .improved
                tryGrow(s)
            } else {
                failedProbes += 1
                nextStep = 1
                resize(to: a.size)
                if !a.verifiedFromBelow && a.size > config.minWorkers {
                    // The anchor may be past the knee (a big step overshot, or we started there).
                    anchor?.verifiedFromBelow = true
                    startTrim(reference: a.rate, thenClimb: false)
                    lastReason = .plateau
                    return
                }
                enterHold()
                lastReason = .plateau
            }

        case .down(let reference, let thenClimb):
            guard let a = anchor else { setAnchor(rate: measured, latency: latency, verifiedFromBelow: false); tryGrow(s); return }
            if measured >= reference * (1 - threshold) {
                setAnchor(rate: measured, latency: latency, verifiedFromBelow: false)
                failedProbes = 0
                // The reference stays where trimming began (a running max would ratchet up on
                // noise and stop the trim early); only a real improvement raises it.
                let next = measured > reference * (1 + threshold) ? measured : reference
                if target > config.minWorkers {
                    startTrim(reference: next, thenClimb: false)
                } else {
                    enterHold()
                }
                lastReason = .trimAccepted
            } else {
                resize(to: a.size)
                failedProbes += 1
                anchor?.verifiedFromBelow = true
                if thenClimb {
                    // The anchor is still the best and the sizes above it are unexplored:
                    // probe upward straight away, against the anchor's recent measurement.
                    nextStep = 1
                    tryGrow(s)
                    if lastReason == .probingUp { lastReason = .trimUndone }
                } else {
                    enterHold()
                    lastReason = .trimUndone
                }
            }
        }
    }

    /// While holding at the anchor: shed workers above the speed cap, or test fewer workers
    /// when throughput fell or latency rose. Returns true if it acted.
    private mutating func shrinkWhileHolding() -> Bool {
        guard var a = anchor, target > config.minWorkers else { return false }
        if let cap = config.maxBytesPerSecond, a.rate > cap * PoolOptimizer.capShrinkFraction {
            resize(to: target - 1)
            anchor = nil
            phase = .measuring(.start)
            lastReason = .aboveSpeedCap
            return true
        }
        if a.recent.count >= PoolOptimizer.measureIntervals,
           a.recent.allSatisfy({ $0 < a.peak * (1 - PoolOptimizer.dropFraction) }) {
            // Sustained: every recent sample is low, so their mean is the new level (the EWMA
            // still lags) and the trim is judged against it.
            let level = a.recent.reduce(0, +) / Double(a.recent.count)
            a.rate = level; a.peak = level; a.recent.removeAll()
            anchor = a
            startTrim(reference: level, thenClimb: false)
            lastReason = .throughputFell
            return true
        }
        if let base = a.latencyBaseline, let now = a.latency, base > 0,
           now > base * PoolOptimizer.latencyRiseFactor,
           a.rate <= a.rateAtLatencyBaseline * (1 + PoolOptimizer.improvementThreshold) {
            a.latencyBaseline = now
            a.rateAtLatencyBaseline = a.rate
            anchor = a
            startTrim(reference: a.rate, thenClimb: false)
            lastReason = .latencyRose
            return true
        }
        return false
    }

    /// From the anchor (`target`), probe upward if allowed; otherwise hold.
    private mutating func tryGrow(_ s: ThroughputSample) {
        let anchorRate = anchor?.rate ?? 0
        let ceiling = min(config.maxWorkers, throttleCeiling ?? config.maxWorkers)
        if !s.queuedWork {
            enterHold(PoolOptimizer.holdIntervals); lastReason = .noQueuedWork; return
        }
        if let cap = config.maxBytesPerSecond, anchorRate >= cap * PoolOptimizer.capGrowFraction {
            enterHold(); lastReason = .atSpeedCap; return
        }
        if target >= ceiling {
            enterHold()
            lastReason = target >= config.maxWorkers ? .atMaxWorkers : .throttleCeiling
            return
        }
        if s.errors > 0 {
            enterHold(PoolOptimizer.holdIntervals); lastReason = .errors; return
        }
        var step = max(1, nextStep)
        if let cap = config.maxBytesPerSecond, anchorRate > 0 {
            // Aim at the cap, not past it: the workers needed at the current per-worker rate.
            let perWorker = anchorRate / Double(target)
            let needed = Int((cap * PoolOptimizer.capGrowFraction / perWorker).rounded(.up))
            step = min(step, max(1, needed - target))
        }
        resize(to: min(ceiling, target + step))
        phase = .measuring(.up)
        lastReason = .probingUp
    }

    private mutating func startTrim(reference: Double, thenClimb: Bool) {
        resize(to: target - 1)
        phase = .measuring(.down(reference: reference, thenClimb: thenClimb))
    }

    // MARK: Helpers

    private mutating func resize(to n: Int, throttle: Bool = false) {
        let clamped = min(max(n, config.minWorkers), config.maxWorkers)
        if clamped != target {
            target = clamped
            settle = PoolOptimizer.settleIntervals
            lastResizeWasThrottle = throttle
        }
        resetMeasurement()
    }

    private mutating func resetMeasurement() {
        sum = 0; sumSquares = 0; count = 0; latencySum = 0; latencyCount = 0
    }

    /// Enough samples, and either their mean is precise enough or we cannot afford to wait more.
    private func measurementIsConclusive() -> Bool {
        if count < PoolOptimizer.measureIntervals { return false }
        if count >= PoolOptimizer.maxMeasureIntervals { return true }
        let n = Double(count)
        let mean = sum / n
        guard mean > 0 else { return true }
        let variance = max(0, (sumSquares - n * mean * mean) / (n - 1))
        let standardError = (variance / n).squareRoot()
        return standardError <= PoolOptimizer.maxRelativeStandardError * mean
    }

    private mutating func setAnchor(rate: Double, latency: Double?, verifiedFromBelow: Bool) {
        anchor = Anchor(size: target, rate: rate, peak: rate, verifiedFromBelow: verifiedFromBelow,
                        latency: latency, latencyBaseline: latency, rateAtLatencyBaseline: rate)
    }

    private mutating func updateAnchor(rate: Double, latency: Double?) {
        guard var a = anchor, a.size == target else {
            setAnchor(rate: rate, latency: latency, verifiedFromBelow: false)
            return
        }
        let alpha = PoolOptimizer.ewmaAlpha
        a.rate += alpha * (rate - a.rate)
        a.peak = max(a.peak, a.rate)
        a.recent.append(rate)
        if a.recent.count > PoolOptimizer.measureIntervals { a.recent.removeFirst() }
        if let l = latency, l.isFinite {
            a.latency = a.latency.map { $0 + alpha * (l - $0) } ?? l
            if a.latencyBaseline == nil { a.latencyBaseline = a.latency; a.rateAtLatencyBaseline = a.rate }
        }
        anchor = a
    }

    /// Sits at the anchor for `intervals` (default: the doubling hold); the next climb starts
    /// with a single-worker step.
    private mutating func enterHold(_ intervals: Int? = nil) {
        nextStep = 1
        phase = .holding(remaining: intervals ?? holdLength())
    }

    private func holdLength() -> Int {
        let doubled = PoolOptimizer.holdIntervals << min(failedProbes, 16)
        return min(PoolOptimizer.maxHoldIntervals, doubled)
    }
}
