/// Prometheus metrics of a mount (`--metrics-address 127.0.0.1:PORT`), with swift-prometheus:
/// bytes fetched by lane, cache hits and misses, evictions, retries by cause, fetch failures,
/// bytes served, workers, queue depths, the cache cap, build and process figures, and
/// histograms of fetch time-to-first-byte and read latency. Names follow Prometheus
/// conventions (counters end in `_total`, units in the name, HELP on every family). Served as text on
/// `GET /metrics` by a small HTTP listener on its own thread.
import Foundation
import Logging
import Prefetcher
import Prometheus
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

public final class MountMetrics: @unchecked Sendable {
    // @unchecked: swift-prometheus metrics are thread-safe; the `last*` figures are guarded by `lock`.
    let registry = PrometheusCollectorRegistry()
    private let lock = NSLock()
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
    private var last = EngineStats()
    private var lastHits: Int64 = 0, lastMisses: Int64 = 0, lastEvicted: Int64 = 0

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
    }

    public func recordFetch(firstByte seconds: Double, lane: Lane) { fetchTTFB[lane.rawValue].record(seconds) }
    public func recordRead(seconds: Double, hit: Bool, bytes: Int) {
        readLatency[hit ? "hit" : "miss"]?.record(seconds)
        if bytes > 0 { readBytes.increment(by: Int64(bytes)) }
    }

    /// Brings counters and gauges up to date from the engine and cache figures. `capacity` is
    /// the cache cap in bytes (nil: unlimited, and the gauge is left out).
    public func update(engine e: EngineStats, hits h: Int64, misses m: Int64, cached: Int64, evicted: Int64,
                       capacity: Int64? = nil) {
        lock.lock()
        for i in 0..<3 where e.bytesByLane[i] > last.bytesByLane[i] { fetchedBytes[i].increment(by: e.bytesByLane[i] - last.bytesByLane[i]) }
        if e.throttled > last.throttled { retries["throttled"]!.increment(by: Int64(e.throttled - last.throttled)) }
        let other = (e.retries - e.throttled) - (last.retries - last.throttled)
        if other > 0 { retries["other"]!.increment(by: Int64(other)) }
        if e.failed > last.failed { fetchFailures.increment(by: Int64(e.failed - last.failed)) }
        if h > lastHits { hits.increment(by: h - lastHits) }
        if m > lastMisses { misses.increment(by: m - lastMisses) }
        // The index's figure counts all time; the first scrape starts from it.
        if evicted > lastEvicted { evictedBytes.increment(by: evicted - lastEvicted) }
        last = e; lastHits = h; lastMisses = m; lastEvicted = max(lastEvicted, evicted)
        lock.unlock()
        workers.set(Double(e.workers))
        for i in 0..<3 { queueDepth[i].set(Double(e.queuedByLane[i])) }
        inflight.set(Double(e.inflight))
        cachedBytes.set(Double(cached))
        if let capacity {
            registry.makeGauge(name: "soak_cache_capacity_bytes", help: "The cache cap in bytes now (absent: unlimited)")
                .set(Double(capacity))
        }
        process.update()
    }

    public func render() -> [UInt8] { registry.emitToBuffer() }
}

/// A minimal HTTP/1.0-style listener: any GET answers with `render()` as Prometheus text.
public final class MetricsServer: @unchecked Sendable {
    // @unchecked: `fd` is set before the thread starts and closed by `stop`.
    private var fd: Int32 = -1
    private let render: @Sendable () -> [UInt8]

    /// HOST:PORT with an IPv4 host (e.g. 127.0.0.1:9100); anything else is a usage error.
    public static func parse(_ address: String) throws -> sockaddr_in {
        let parts = address.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else {
            throw UsageError("invalid --metrics-address '\(address)': expected HOST:PORT, e.g. 127.0.0.1:9100")
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, String(parts[0]), &addr.sin_addr) == 1 else {
            throw UsageError("invalid --metrics-address '\(address)': '\(parts[0])' is not an IPv4 address")
        }
        return addr
    }

    /// `address` is HOST:PORT with an IPv4 host (e.g. 127.0.0.1:9100).
    public init(address: String, render: @escaping @Sendable () -> [UInt8]) throws {
        self.render = render
        var addr = try Self.parse(address)
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw MountError("metrics socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0, listen(s, 16) == 0 else {
            let e = errno
            close(s)
            throw MountError("cannot serve metrics on \(address): \(String(cString: strerror(e)))")
        }
        fd = s
    }

    public func start() {
        let s = fd
        let t = Thread { [self] in
            while true {
                let c = accept(s, nil, nil)
                if c < 0 { if errno == EINTR { continue }; return }
                serve(c)
            }
        }
        t.name = "soak-metrics"
        t.start()
    }

    public func stop() { if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)); close(fd); fd = -1 } }

    private func serve(_ c: Int32) {
        defer { close(c) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 2048)
        while request.count < 16_384 {
            let n = chunk.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            request += chunk[0..<n]
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
        }
        let ok = request.starts(with: Array("GET ".utf8))
        let body = ok ? render() : Array("only GET /metrics\n".utf8)
        let head = "HTTP/1.1 \(ok ? "200 OK" : "405 Method Not Allowed")\r\nContent-Type: text/plain; version=0.0.4\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let out = Array(head.utf8) + body
        out.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = send(c, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { break }
                off += n
            }
        }
    }
}
