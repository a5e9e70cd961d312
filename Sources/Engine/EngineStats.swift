/// Live counters for progress bars, `soak status` and tests.
public struct EngineStats: Sendable, Codable {
    public var bytes: Int64 = 0
    public var completed = 0
    public var failed = 0
    public var retries = 0
    public var throttled = 0
    public var workers = 0
    public var targetWorkers = 0
    public var queued = 0
    /// Ready work per lane: urgent, read-ahead, bulk.
    public var queuedByLane: [Int] = [0, 0, 0]
    /// Bytes written per lane (urgent, read-ahead, bulk), as reported by workers.
    public var bytesByLane: [Int64] = [0, 0, 0]
    public var inflight = 0
    public var workerRestarts = 0
    /// Bytes per second over the last optimization interval.
    public var rate: Double = 0
    /// GetObject requests answered, by `RequestOutcome.label` (ok, an HTTP status, or a failure
    /// class). Optional: a `soak status` talking to an older mount decodes without it.
    public var getObjectRequests: [String: Int]?
    public init() {}
}
