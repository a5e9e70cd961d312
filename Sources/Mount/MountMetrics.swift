/// Prometheus metrics of a mount (`--metrics-address 127.0.0.1:PORT`), with swift-prometheus:
/// bytes fetched by lane, cache hits and misses, evictions, retries by cause, fetch failures,
/// bytes served, workers, queue depths, the cache cap, build and process figures, and
/// histograms of fetch time-to-first-byte and read latency. Names follow Prometheus
/// conventions (counters end in `_total`, units in the name, HELP on every family). Served as text on
/// `GET /metrics` by a small HTTP listener on its own thread.
import Engine
import Foundation
import Logging
import Prometheus
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public final class MountMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let fetchedBytes: [Counter]
    private let hits: Counter
    private let misses: Counter
    private let evictedBytes: Counter
    private let fetchFailures: Counter
    private let readBytes: Counter
    private let retries: [String: Counter]
    private let workers: Gauge
    private let queueDepth: [Gauge]
    private let inflight: Gauge
    private let cachedBytes: Gauge
    private let fetchTTFB: [ValueHistogram]
    private let readLatency: [String: ValueHistogram]
    private let process: ProcessMetrics
    private let requests: S3RequestMetrics
    /// The figures the counters stand at.
    private struct Last {
        var engine = EngineStats()
        var hits: Int64 = 0, misses: Int64 = 0, evicted: Int64 = 0
    }
    private let last = Mutex(Last())

    public init(version: String = BuildInfo.version, commit: String? = BuildInfo.commit) {
        let registry = self.registry
        let lanes = ["urgent", "readahead", "bulk"]
        var build = [("version", version)]
        if let commit { build.append(("commit", commit)) }
        registry.makeGauge(name: "soak_build_info", labels: build, help: "Always 1; the labels name the soak build").set(1.0)
        fetchedBytes = lanes.map { registry.makeCounter(name: "soak_fetched_bytes_total", labels: [("lane", $0)],
                                                        help: "Bytes fetched from S3, by scheduling lane") }
        hits = registry.makeCounter(name: "soak_cache_hits_total", help: "Mount reads served from the cache")
        misses = registry.makeCounter(name: "soak_cache_misses_total", help: "Mount reads that had to fetch")
        evictedBytes = registry.makeCounter(name: "soak_cache_evicted_bytes_total",
                                            help: "Bytes evicted from the cache directory (all time, as kept in its index)")
        fetchFailures = registry.makeCounter(name: "soak_fetch_failures_total", help: "Fetches that failed after their retries")
        readBytes = registry.makeCounter(name: "soak_read_bytes_total", help: "Bytes served to readers of the mount")
        retries = Dictionary(uniqueKeysWithValues: ["throttled", "other"].map {
            ($0, registry.makeCounter(name: "soak_retries_total", labels: [("cause", $0)], help: "Fetches retried, by cause"))
        })
        workers = registry.makeGauge(name: "soak_workers", help: "Live worker processes")
        queueDepth = lanes.map { registry.makeGauge(name: "soak_queue_depth", labels: [("lane", $0)], help: "Fetches waiting, by lane") }
        inflight = registry.makeGauge(name: "soak_fetches_in_flight", help: "Fetches held by workers")
        cachedBytes = registry.makeGauge(name: "soak_cache_bytes", help: "Bytes in the cache directory")
        let seconds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
        fetchTTFB = lanes.map { registry.makeValueHistogram(name: "soak_fetch_first_byte_seconds", labels: [("lane", $0)],
                                                            buckets: seconds, help: "Time to the first byte of a fetch, by lane") }
        readLatency = Dictionary(uniqueKeysWithValues: ["hit", "miss"].map {
            ($0, registry.makeValueHistogram(name: "soak_read_seconds", labels: [("result", $0)], buckets: seconds,
                                             help: "Mount read latency, by cache result"))
        })
        process = ProcessMetrics(registry: registry)
        requests = S3RequestMetrics(registry: registry)
    }

    public func recordFetch(firstByte seconds: Double, lane: Lane) { fetchTTFB[lane.rawValue].record(seconds) }
    public func recordRead(seconds: Double, hit: Bool, bytes: Int) {
        readLatency[hit ? "hit" : "miss"]?.record(seconds)
        if bytes > 0 { readBytes.increment(by: Int64(bytes)) }
    }

    /// Brings counters and gauges up to date from the engine and cache figures. `capacity` is
    /// the cache cap in bytes (nil: unlimited, and the gauge is left out).
    public func update(engine e: EngineStats, hits h: Int64, misses m: Int64, cached: Int64, evicted: Int64,
                       capacity: Int64? = nil, requestCounts: [String: [String: Int]] = [:]) {
        last.withLock { last in
            let l = last.engine
            for i in 0..<3 where e.bytesByLane[i] > l.bytesByLane[i] { fetchedBytes[i].increment(by: e.bytesByLane[i] - l.bytesByLane[i]) }
            if e.throttled > l.throttled { retries["throttled"]!.increment(by: Int64(e.throttled - l.throttled)) }
            let other = (e.retries - e.throttled) - (l.retries - l.throttled)
            if other > 0 { retries["other"]!.increment(by: Int64(other)) }
            if e.failed > l.failed { fetchFailures.increment(by: Int64(e.failed - l.failed)) }
            if h > last.hits { hits.increment(by: h - last.hits) }
            if m > last.misses { misses.increment(by: m - last.misses) }
            // The index's figure counts all time; the first scrape starts from it.
            if evicted > last.evicted { evictedBytes.increment(by: evicted - last.evicted) }
            last.engine = e; last.hits = h; last.misses = m; last.evicted = max(last.evicted, evicted)
        }
        workers.set(Double(e.workers))
        for i in 0..<3 { queueDepth[i].set(Double(e.queuedByLane[i])) }
        inflight.set(Double(e.inflight))
        cachedBytes.set(Double(cached))
        if let capacity {
            registry.makeGauge(name: "soak_cache_capacity_bytes", help: "The cache cap in bytes now (absent: unlimited)")
                .set(Double(capacity))
        }
        requests.update(workerGets: e.getObjectRequests, coordinator: requestCounts)
        process.update()
    }

    public func render() -> [UInt8] { registry.emitToBuffer() }
}
