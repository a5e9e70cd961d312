/// `soak_s3_requests_total{operation, status}`: the requests that drive S3's bill, by outcome
/// (ok, an HTTP status, or a failure class): the engine's count of its workers' GetObject
/// reports, plus (in a mount) the coordinator's own listings, HEADs and GETs.
import Foundation
import Prometheus
import Synchronization

final class S3RequestMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let labels: [(String, String)]
    /// The counts at the last update, by operation and status.
    private let last = Mutex<[String: [String: Int]]>([:])

    init(registry: PrometheusCollectorRegistry, labels: [(String, String)] = []) {
        self.registry = registry
        self.labels = labels
        _ = counter("GetObject", "ok")  // the family is there from the first scrape
    }

    private func counter(_ operation: String, _ status: String) -> Counter {
        registry.makeCounter(name: "soak_s3_requests_total", labels: labels + [("operation", operation), ("status", status)],
                             help: "S3 requests answered, by operation and status (ok, an HTTP status, or a failure class)")
    }

    /// `workerGets`: the engine's GetObject counts; `coordinator`: the counts of a
    /// `CountingObjectStore`. Both only grow, and so does their sum.
    func update(workerGets: [String: Int]?, coordinator: [String: [String: Int]] = [:]) {
        var counts = coordinator
        for (status, n) in workerGets ?? [:] { counts["GetObject", default: [:]][status, default: 0] += n }
        let deltas = last.withLock { last in
            var deltas: [(String, String, Int)] = []
            for (op, byStatus) in counts {
                for (status, n) in byStatus where n > last[op]?[status] ?? 0 {
                    deltas.append((op, status, n - (last[op]?[status] ?? 0)))
                    last[op, default: [:]][status] = n
                }
            }
            return deltas
        }
        for (op, status, d) in deltas { counter(op, status).increment(by: Int64(d)) }
    }
}
