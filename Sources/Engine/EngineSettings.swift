import Foundation
import S3
import SoakCore

/// Pool and retry settings (the `MIN_PROCESSES`… environment contract maps onto these).
public struct EngineSettings: Sendable {
    public var minWorkers = 1
    public var maxWorkers = 8
    /// Workers at start; the optimizer moves from here. One process with 16 transfers, because a
    /// second process only costs CPU on small objects (docs/BENCHMARKS.md, worker pool).
    public var initialWorkers = 1
    /// Concurrent transfers per worker: enough to hide request latency for small objects.
    public var slotsPerWorker = 16
    /// Orders a worker may hold beyond its slots, so it never idles waiting for the next one.
    public var prefetchDepth = 4
    public var maxBytesPerSecond: Double? = nil
    public var optimizationInterval = 2.0
    public var retry = RetryPolicy(maxAttempts: 5, baseDelay: 0.5, maxDelay: 20)
    /// A busy worker silent for this long is considered hung (heartbeat is every 0.25 s).
    public var hangTimeout = 30.0
    public var transport = TransportOptions()
    public var logLevel = "info"
    /// `--log-file`, passed on to workers (nil: they log to the stderr they inherit).
    public var logFile: String?
    /// Which fetches are written with O_DIRECT.
    public var directIO = DirectIO.largeParts
    /// Bulk orders out at workers at once, over the whole pool (nil: only each worker's
    /// capacity). A mount sets it low: every bulk transfer in flight makes the server push
    /// bytes that a paused transfer cannot stop, so a read that misses waits behind them.
    public var maxBulkOrders: Int? = nil
    public init() {}
}
