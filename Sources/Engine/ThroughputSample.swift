/// What one interval achieved.
public struct ThroughputSample: Sendable, Equatable {
    public var bytes: Int64
    public var seconds: Double
    /// Workers that ran during the interval (not counting retiring ones).
    public var workers: Int
    /// 503 SlowDown (and other throttle) responses in the interval.
    public var throttled: Int
    /// Other failed requests in the interval.
    public var errors: Int
    /// Median seconds to first byte, if any request started.
    public var latencyP50: Double?
    /// Whether work was waiting that more workers could take.
    public var queuedWork: Bool

    public init(bytes: Int64, seconds: Double, workers: Int, throttled: Int = 0, errors: Int = 0,
                latencyP50: Double? = nil, queuedWork: Bool = true) {
        self.bytes = bytes; self.seconds = seconds; self.workers = workers; self.throttled = throttled
        self.errors = errors; self.latencyP50 = latencyP50; self.queuedWork = queuedWork
    }

    public var bytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds : 0 }
}
