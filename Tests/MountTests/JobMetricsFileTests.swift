/// `--metrics-file`: the node_exporter textfile of a download or prewarm, written at once,
/// then every `writeInterval` (an injected clock) and at the end, always by rename so a
/// collector never reads half a file.
import Engine
import Foundation
import Mount
import SoakCore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class JobMetricsFileTests: XCTestCase {
    private func progress(objects: Int, bytes: Int64, of total: Int = 10, lanes: [Int64] = [0, 0, 0], retries: Int = 0,
                          throttled: Int = 0, failed: Int = 0, workers: Int = 0) -> DownloadProgress {
        var e = EngineStats()
        e.bytesByLane = lanes
        e.retries = retries
        e.throttled = throttled
        e.failed = failed
        e.workers = workers
        e.getObjectRequests = ["ok": objects]
        return DownloadProgress(bytesDone: bytes, bytesTotal: 1000, objectsDone: objects, objectsTotal: total, engine: e)
    }

    private func samples(_ path: String) throws -> [String: Double] {
        prometheusSamples(Array(try XCTUnwrap(FileManager.default.contents(atPath: path))))
    }

    private func leftovers(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0 != "job.prom" }
    }

    func testWrittenAtOnceThenOnTheIntervalAndAtTheEnd() throws {
        let dir = try temporaryDirectory(self, "jobmetrics")
        let path = dir + "/job.prom"
        let clock = ManualClock(start: 100)
        let file = try JobMetricsFile(path: path, command: "download", logger: CapturedLog().logger, clock: clock)
        var s = try samples(path)
        XCTAssertEqual(s[#"soak_job_finished{command="download"}"#], 0, "a first file before any work")
        XCTAssertEqual(s[#"soak_job_objects_done_total{command="download"}"#], 0)
        XCTAssertNotNil(s[#"soak_s3_requests_total{command="download",operation="GetObject",status="ok"}"#])

        file.update(progress(objects: 1, bytes: 100, lanes: [0, 0, 100], retries: 3, throttled: 1, failed: 1, workers: 4))
        s = try samples(path)
        XCTAssertEqual(s[#"soak_job_objects_done_total{command="download"}"#], 1, "the first update writes")
        XCTAssertEqual(s[#"soak_job_bytes_done_total{command="download"}"#], 100)
        XCTAssertEqual(s[#"soak_fetched_bytes_total{command="download",lane="bulk"}"#], 100)
        XCTAssertEqual(s[#"soak_retries_total{command="download",cause="throttled"}"#], 1)
        XCTAssertEqual(s[#"soak_retries_total{command="download",cause="other"}"#], 2)
        XCTAssertEqual(s[#"soak_fetch_failures_total{command="download"}"#], 1)
        XCTAssertEqual(s[#"soak_job_objects{command="download"}"#], 10)
        XCTAssertEqual(s[#"soak_job_bytes{command="download"}"#], 1000)
        XCTAssertEqual(s[#"soak_workers{command="download"}"#], 4)
        XCTAssertEqual(s[#"soak_s3_requests_total{command="download",operation="GetObject",status="ok"}"#], 1)
        XCTAssertEqual(try XCTUnwrap(s[#"soak_job_last_update_timestamp_seconds{command="download"}"#]),
                       Date().timeIntervalSince1970, accuracy: 60)

        clock.advance(by: JobMetricsFile.writeInterval - 0.5)
        file.update(progress(objects: 2, bytes: 200, lanes: [0, 0, 200]))
        XCTAssertEqual(try samples(path)[#"soak_job_objects_done_total{command="download"}"#], 1, "not due yet: file unchanged")

        clock.advance(by: 0.5)
        file.update(progress(objects: 3, bytes: 300, lanes: [0, 0, 300]))
        s = try samples(path)
        XCTAssertEqual(s[#"soak_job_objects_done_total{command="download"}"#], 3, "due: counted growth includes the unwritten update")
        XCTAssertEqual(s[#"soak_fetched_bytes_total{command="download",lane="bulk"}"#], 300)

        file.update(progress(objects: 4, bytes: 400), final: true)
        s = try samples(path)
        XCTAssertEqual(s[#"soak_job_objects_done_total{command="download"}"#], 4, "the end is written at once")
        XCTAssertEqual(s[#"soak_job_finished{command="download"}"#], 1)
        XCTAssertEqual(try leftovers(dir), [], "no temp file left beside it")
    }

    func testRewriteIsARenameSoReadersNeverSeeHalfAFile() throws {
        let dir = try temporaryDirectory(self, "jobmetrics")
        let path = dir + "/job.prom"
        let file = try JobMetricsFile(path: path, command: "prewarm", logger: CapturedLog().logger, clock: ManualClock())
        let reader = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(reader, 0)
        defer { close(reader) }
        var before = stat(), after = stat()
        XCTAssertEqual(fstat(reader, &before), 0)
        let old = try XCTUnwrap(FileManager.default.contents(atPath: path))

        file.update(progress(objects: 5, bytes: 500), final: true)
        XCTAssertEqual(stat(path, &after), 0)
        XCTAssertNotEqual(before.st_ino, after.st_ino, "a new file renamed over the old one")
        // The open reader still has the whole old file, never a truncated or mixed one.
        var buf = [UInt8](repeating: 0, count: old.count + 4096)
        let n = pread(reader, &buf, buf.count, 0)
        XCTAssertEqual(Array(buf[0..<max(n, 0)]), Array(old))
        XCTAssertEqual(try samples(path)[#"soak_job_finished{command="prewarm"}"#], 1)
        XCTAssertEqual(after.st_mode & 0o777, 0o644)
    }

    func testAnUnwritablePathFailsTheCommandAtOnce() throws {
        let dir = try temporaryDirectory(self, "jobmetrics")
        XCTAssertThrowsError(try JobMetricsFile(path: dir + "/missing/job.prom", command: "download", logger: CapturedLog().logger)) {
            XCTAssertTrue($0 is UsageError, "\($0)")
            XCTAssertTrue("\($0)".hasPrefix("cannot write --metrics-file \(dir)/missing/job.prom: "), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    func testATempPathThatIsASymlinkIsNotFollowed() throws {
        let dir = try temporaryDirectory(self, "jobmetrics")
        let victim = dir + "/victim"
        XCTAssertTrue(FileManager.default.createFile(atPath: victim, contents: Data("keep".utf8)))
        XCTAssertEqual(symlink(victim, dir + "/job.prom.tmp.\(getpid())"), 0)
        XCTAssertThrowsError(try JobMetricsFile(path: dir + "/job.prom", command: "download", logger: CapturedLog().logger))
        XCTAssertEqual(FileManager.default.contents(atPath: victim), Data("keep".utf8), "soak writes only paths it owns")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/job.prom"))
    }

    func testAFailedRewriteWarnsOnceAndTheJobGoesOn() throws {
        let dir = try temporaryDirectory(self, "jobmetrics")
        let sub = dir + "/out"
        XCTAssertEqual(mkdir(sub, 0o755), 0)
        let log = CapturedLog()
        let file = try JobMetricsFile(path: sub + "/job.prom", command: "download", logger: log.logger, clock: ManualClock())
        XCTAssertEqual(unlink(sub + "/job.prom"), 0)
        XCTAssertEqual(rmdir(sub), 0)
        file.update(progress(objects: 1, bytes: 1), final: true)
        file.update(progress(objects: 2, bytes: 2), final: true)
        XCTAssertEqual(log.at(.warning).count, 1, "\(log.at(.warning))")
        XCTAssertTrue(log.at(.warning).first?.contains("cannot write --metrics-file \(sub)/job.prom") ?? false)

        XCTAssertEqual(mkdir(sub, 0o755), 0)  // the directory is back: the next write lands
        file.update(progress(objects: 3, bytes: 3), final: true)
        XCTAssertEqual(try samples(sub + "/job.prom")[#"soak_job_objects_done_total{command="download"}"#], 3)
    }
}
