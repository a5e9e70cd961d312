/// `soak_s3_requests_total{operation, status}`: the requests that drive S3's bill, from the
/// engine's count of GetObject reports by outcome (ok, an HTTP status, or a failure class).
/// Listings and HEADs of the coordinator are not counted yet.
import Foundation
import Prometheus

final class S3RequestMetrics: @unchecked Sendable {
    // @unchecked: `last` is guarded by `lock`; the counters are thread-safe.
    private let registry: PrometheusCollectorRegistry
    private let labels: [(String, String)]
    private let lock = NSLock()
    private var last: [String: Int] = [:]

    init(registry: PrometheusCollectorRegistry, labels: [(String, String)] = []) {
        self.registry = registry
        self.labels = labels
        _ = counter("ok")  // the family is there from the first scrape
    }

    private func counter(_ status: String) -> Counter {
        registry.makeCounter(name: "soak_s3_requests_total", labels: labels + [("operation", "GetObject"), ("status", status)],
                             help: "S3 requests answered, by operation and status (ok, an HTTP status, or a failure class)")
    }

    func update(_ counts: [String: Int]?) {
        guard let counts else { return }
        lock.lock()
        var deltas: [(String, Int)] = []
        for (status, n) in counts where n > last[status, default: 0] { deltas.append((status, n - last[status, default: 0])) }
        last = counts.merging(last) { max($0, $1) }
        lock.unlock()
        for (status, d) in deltas { counter(status).increment(by: Int64(d)) }
    }
}
