/// The mount's Prometheus figures: counters follow the engine and cache totals by their
/// growth (never double-counted, never decreasing), gauges show the figure now, and the
/// process and S3 request families come along.
import Engine
import Foundation
import Mount
import XCTest

final class MountMetricsTests: XCTestCase {
    private func engine(lanes: [Int64] = [0, 0, 0], retries: Int = 0, throttled: Int = 0, failed: Int = 0,
                        gets: [String: Int]? = nil) -> EngineStats {
        var e = EngineStats()
        e.bytesByLane = lanes
        e.retries = retries
        e.throttled = throttled
        e.failed = failed
        e.getObjectRequests = gets
        return e
    }

    /// The figures fed by `update` and the `record` calls: without the process's and the
    /// workers' own, which move between any two scrapes.
    private func ownFigures(_ s: [String: Double]) -> [String: Double] {
        s.filter { $0.key.hasPrefix("soak_") && !$0.key.hasPrefix("soak_workers_") }
    }

    func testBuildInfoAndFamiliesFromTheFirstScrape() {
        let s = prometheusSamples(MountMetrics(version: "9.8.7", commit: "abc123").render())
        XCTAssertEqual(s[#"soak_build_info{version="9.8.7",commit="abc123"}"#], 1)
        XCTAssertEqual(s[#"soak_s3_requests_total{operation="GetObject",status="ok"}"#], 0, "there before any request")
        XCTAssertEqual(s[#"soak_fetched_bytes_total{lane="bulk"}"#], 0)
        XCTAssertNil(s["soak_cache_capacity_bytes"], "absent until a cap is known")
        let noCommit = prometheusSamples(MountMetrics(version: "1", commit: nil).render())
        XCTAssertEqual(noCommit[#"soak_build_info{version="1"}"#], 1)
    }

    func testCountersAddWhatGrewSinceTheLastUpdate() {
        let m = MountMetrics(version: "t", commit: nil)
        m.update(engine: engine(lanes: [10, 20, 30], retries: 5, throttled: 2, failed: 1), hits: 3, misses: 2, cached: 100,
                 evicted: 50)
        var s = prometheusSamples(m.render())
        XCTAssertEqual(s[#"soak_fetched_bytes_total{lane="urgent"}"#], 10)
        XCTAssertEqual(s[#"soak_fetched_bytes_total{lane="readahead"}"#], 20)
        XCTAssertEqual(s[#"soak_fetched_bytes_total{lane="bulk"}"#], 30)
        XCTAssertEqual(s[#"soak_retries_total{cause="throttled"}"#], 2)
        XCTAssertEqual(s[#"soak_retries_total{cause="other"}"#], 3)
        XCTAssertEqual(s["soak_fetch_failures_total"], 1)
        XCTAssertEqual(s["soak_cache_hits_total"], 3)
        XCTAssertEqual(s["soak_cache_misses_total"], 2)
        XCTAssertEqual(s["soak_cache_evicted_bytes_total"], 50, "the first update starts from the index's all-time figure")

        // The same totals again: nothing is counted twice.
        m.update(engine: engine(lanes: [10, 20, 30], retries: 5, throttled: 2, failed: 1), hits: 3, misses: 2, cached: 100,
                 evicted: 50)
        XCTAssertEqual(ownFigures(prometheusSamples(m.render())), ownFigures(s))

        // Growth is added, and only growth.
        m.update(engine: engine(lanes: [15, 20, 31], retries: 9, throttled: 3, failed: 1), hits: 7, misses: 2, cached: 90,
                 evicted: 60)
        s = prometheusSamples(m.render())
        XCTAssertEqual(s[#"soak_fetched_bytes_total{lane="urgent"}"#], 15)
        XCTAssertEqual(s[#"soak_fetched_bytes_total{lane="bulk"}"#], 31)
        XCTAssertEqual(s[#"soak_retries_total{cause="throttled"}"#], 3)
        XCTAssertEqual(s[#"soak_retries_total{cause="other"}"#], 6)
        XCTAssertEqual(s["soak_cache_hits_total"], 7)
        XCTAssertEqual(s["soak_cache_evicted_bytes_total"], 60)
        XCTAssertEqual(s["soak_cache_bytes"], 90, "a gauge shows the figure now")

        // Smaller totals (an index figure read before a concurrent update): counters never go down.
        m.update(engine: engine(lanes: [1, 1, 1]), hits: 1, misses: 1, cached: 5, evicted: 10)
        s = prometheusSamples(m.render())
        XCTAssertEqual(s[#"soak_fetched_bytes_total{lane="urgent"}"#], 15)
        XCTAssertEqual(s["soak_cache_hits_total"], 7)
        XCTAssertEqual(s["soak_cache_evicted_bytes_total"], 60)
        XCTAssertEqual(s["soak_cache_bytes"], 5)
    }

    func testGaugesAndTheCacheCap() {
        let m = MountMetrics(version: "t", commit: nil)
        var e = engine()
        e.workers = 4
        e.queuedByLane = [1, 2, 3]
        e.inflight = 7
        m.update(engine: e, hits: 0, misses: 0, cached: 0, evicted: 0, capacity: 1 << 30)
        let s = prometheusSamples(m.render())
        XCTAssertEqual(s["soak_workers"], 4)
        XCTAssertEqual(s[#"soak_queue_depth{lane="urgent"}"#], 1)
        XCTAssertEqual(s[#"soak_queue_depth{lane="readahead"}"#], 2)
        XCTAssertEqual(s[#"soak_queue_depth{lane="bulk"}"#], 3)
        XCTAssertEqual(s["soak_fetches_in_flight"], 7)
        XCTAssertEqual(s["soak_cache_capacity_bytes"], Double(1 << 30))
    }

    func testS3RequestsFromWorkersAndTheCoordinator() {
        let m = MountMetrics(version: "t", commit: nil)
        m.update(engine: engine(gets: ["ok": 5, "503": 1]), hits: 0, misses: 0, cached: 0, evicted: 0,
                 requestCounts: ["ListObjectsV2": ["ok": 2, "403": 1], "GetObject": ["ok": 1]])
        var s = prometheusSamples(m.render())
        XCTAssertEqual(s[#"soak_s3_requests_total{operation="GetObject",status="ok"}"#], 6, "workers' and coordinator's summed")
        XCTAssertEqual(s[#"soak_s3_requests_total{operation="GetObject",status="503"}"#], 1)
        XCTAssertEqual(s[#"soak_s3_requests_total{operation="ListObjectsV2",status="ok"}"#], 2)
        XCTAssertEqual(s[#"soak_s3_requests_total{operation="ListObjectsV2",status="403"}"#], 1)
        m.update(engine: engine(gets: ["ok": 5, "503": 1]), hits: 0, misses: 0, cached: 0, evicted: 0,
                 requestCounts: ["ListObjectsV2": ["ok": 2, "403": 1], "GetObject": ["ok": 1]])
        XCTAssertEqual(ownFigures(prometheusSamples(m.render())), ownFigures(s), "the same counts are not added again")
        m.update(engine: engine(gets: ["ok": 8, "503": 1]), hits: 0, misses: 0, cached: 0, evicted: 0,
                 requestCounts: ["ListObjectsV2": ["ok": 3, "403": 1], "GetObject": ["ok": 1], "HeadObject": ["404": 2]])
        s = prometheusSamples(m.render())
        XCTAssertEqual(s[#"soak_s3_requests_total{operation="GetObject",status="ok"}"#], 9)
        XCTAssertEqual(s[#"soak_s3_requests_total{operation="ListObjectsV2",status="ok"}"#], 3)
        XCTAssertEqual(s[#"soak_s3_requests_total{operation="HeadObject",status="404"}"#], 2)
    }

    func testReadAndFetchHistograms() {
        let m = MountMetrics(version: "t", commit: nil)
        m.recordRead(seconds: 0.003, hit: true, bytes: 4096)
        m.recordRead(seconds: 0.2, hit: false, bytes: 100)
        m.recordRead(seconds: 0.0001, hit: true, bytes: 0)
        m.recordFetch(firstByte: 0.04, lane: .bulk)
        let s = prometheusSamples(m.render())
        XCTAssertEqual(s[#"soak_read_seconds_count{result="hit"}"#], 2)
        XCTAssertEqual(s[#"soak_read_seconds_count{result="miss"}"#], 1)
        XCTAssertEqual(s[#"soak_read_seconds_bucket{result="hit",le="0.001"}"#], 1)
        XCTAssertEqual(s[#"soak_read_seconds_bucket{result="hit",le="0.005"}"#], 2)
        XCTAssertEqual(s["soak_read_bytes_total"], 4196)
        XCTAssertEqual(s[#"soak_fetch_first_byte_seconds_count{lane="bulk"}"#], 1)
        XCTAssertEqual(s[#"soak_fetch_first_byte_seconds_count{lane="urgent"}"#], 0)
        XCTAssertEqual(s[#"soak_fetch_first_byte_seconds_bucket{lane="bulk",le="0.025"}"#], 0)
        XCTAssertEqual(s[#"soak_fetch_first_byte_seconds_bucket{lane="bulk",le="0.05"}"#], 1)
    }
}
