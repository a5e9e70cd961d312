/// Bounds for the pool.
public struct OptimizerConfig: Sendable, Equatable {
    public var minWorkers: Int
    public var maxWorkers: Int
    /// Total receive-rate cap in bytes per second, nil for none.
    public var maxBytesPerSecond: Double?

    /// Out-of-range values are clamped (min ≥ 1, max ≥ min, a cap that is not finite and > 0
    /// means no cap); use `validated` for user input that should be rejected instead.
    public init(minWorkers: Int, maxWorkers: Int, maxBytesPerSecond: Double? = nil) {
        self.minWorkers = max(1, minWorkers)
        self.maxWorkers = max(self.minWorkers, maxWorkers)
        if let cap = maxBytesPerSecond, cap.isFinite, cap > 0 { self.maxBytesPerSecond = cap }
        else { self.maxBytesPerSecond = nil }
    }

    /// Like `init`, but refuses out-of-range values.
    public static func validated(minWorkers: Int, maxWorkers: Int,
                                 maxBytesPerSecond: Double?) throws(OptimizerConfigError) -> OptimizerConfig {
        guard minWorkers >= 1 else { throw .minWorkersBelowOne(minWorkers) }
        guard maxWorkers >= minWorkers else { throw .maxBelowMin(min: minWorkers, max: maxWorkers) }
        if let cap = maxBytesPerSecond, !(cap.isFinite && cap > 0) { throw .invalidSpeedCap(cap) }
        return OptimizerConfig(minWorkers: minWorkers, maxWorkers: maxWorkers, maxBytesPerSecond: maxBytesPerSecond)
    }
}

/// Pool bounds that cannot work, from user input.
public enum OptimizerConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    case minWorkersBelowOne(Int)
    case maxBelowMin(min: Int, max: Int)
    case invalidSpeedCap(Double)

    public var description: String {
        switch self {
        case .minWorkersBelowOne(let n):
            return "invalid worker bounds: minimum is \(n), but at least 1 worker is needed to make progress"
        case .maxBelowMin(let lo, let hi):
            return "invalid worker bounds: maximum \(hi) is below minimum \(lo)"
        case .invalidSpeedCap(let v):
            return "invalid speed cap: \(v) bytes/s, but it must be a finite number above 0"
        }
    }
}
