/// `--metrics-file` of `soak download` and `soak prewarm`: the job's metrics in the
/// node_exporter textfile format, rewritten atomically (a temp file in the same directory,
/// then rename) every `writeInterval` and at the end. Families match the mount's where they
/// apply (fetched bytes by lane, retries, failures, workers, build and process figures).
import Engine
import Foundation
import Logging
import Prometheus
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public final class JobMetricsFile: Sendable {
    /// Often enough for a textfile collector's usual scrape interval, rarely enough that the
    /// writes (each also reads /proc for the process figures) cost next to nothing.
    public static let writeInterval = 5.0
    public let path: String
    private let logger: Logger
    /// Times the rewrites (`writeInterval`); tests step it by hand.
    private let clock: any SoakClock
    private let registry = PrometheusCollectorRegistry()
    private let fetchedBytes: [Counter]
    private let retries: [String: Counter]
    private let failures: Counter, objectsDone: Counter, bytesDone: Counter
    private let objectsSelected: Gauge, bytesSelected: Gauge, workers: Gauge, finished: Gauge, updated: Gauge
    private let process: ProcessMetrics
    private let requests: S3RequestMetrics
    private struct State {
        /// The snapshot the counters stand at.
        var last: DownloadProgress?
        var lastWrite = -Double.infinity
        var warned = false
    }
    private let state = Mutex(State())

    /// Writes a first file at once, so that a bad PATH fails the command before any work.
    public init(path: String, command: String, logger: Logger, clock: any SoakClock = SystemClock()) throws {
        self.path = path
        self.logger = logger
        self.clock = clock
        let r = registry
        let label = [("command", command)]
        var build = [("version", BuildInfo.version)]
        if let commit = BuildInfo.commit { build.append(("commit", commit)) }
        r.makeGauge(name: "soak_build_info", labels: build, help: "Always 1; the labels name the soak build").set(1.0)
        fetchedBytes = ["urgent", "readahead", "bulk"].map {
            r.makeCounter(name: "soak_fetched_bytes_total", labels: label + [("lane", $0)], help: "Bytes fetched from S3, by scheduling lane")
        }
        retries = Dictionary(uniqueKeysWithValues: ["throttled", "other"].map {
            ($0, r.makeCounter(name: "soak_retries_total", labels: label + [("cause", $0)], help: "Fetches retried, by cause"))
        })
        failures = r.makeCounter(name: "soak_fetch_failures_total", labels: label, help: "Fetches that failed after their retries")
        objectsDone = r.makeCounter(name: "soak_job_objects_done_total", labels: label, help: "Selected objects finished (fetched or already there)")
        bytesDone = r.makeCounter(name: "soak_job_bytes_done_total", labels: label, help: "Bytes of the selected objects finished")
        objectsSelected = r.makeGauge(name: "soak_job_objects", labels: label, help: "Objects selected by the job (so far, while listing)")
        bytesSelected = r.makeGauge(name: "soak_job_bytes", labels: label, help: "Bytes of the objects selected by the job")
        workers = r.makeGauge(name: "soak_workers", labels: label, help: "Live worker processes")
        finished = r.makeGauge(name: "soak_job_finished", labels: label, help: "1 once the job has ended (its totals are final)")
        updated = r.makeGauge(name: "soak_job_last_update_timestamp_seconds", labels: label,
                              help: "When this file was written, since the epoch")
        process = ProcessMetrics(registry: r)
        requests = S3RequestMetrics(registry: r, labels: label)
        do { try write() } catch { throw UsageError("cannot write --metrics-file \(path): \(error)") }
    }

    /// Takes a progress snapshot; writes the file when `writeInterval` has passed, or now when
    /// `final` (the job's end).
    public func update(_ p: DownloadProgress, final: Bool = false) {
        let now = clock.now()
        let e = p.engine
        let due = state.withLock { s in
            let l = s.last?.engine ?? EngineStats()
            let prevObjects = s.last?.objectsDone ?? 0, prevBytes = s.last?.bytesDone ?? 0
            for i in 0..<3 where e.bytesByLane[i] > l.bytesByLane[i] { fetchedBytes[i].increment(by: e.bytesByLane[i] - l.bytesByLane[i]) }
            if e.throttled > l.throttled { retries["throttled"]!.increment(by: Int64(e.throttled - l.throttled)) }
            let other = (e.retries - e.throttled) - (l.retries - l.throttled)
            if other > 0 { retries["other"]!.increment(by: Int64(other)) }
            if e.failed > l.failed { failures.increment(by: Int64(e.failed - l.failed)) }
            if p.objectsDone > prevObjects { objectsDone.increment(by: Int64(p.objectsDone - prevObjects)) }
            if p.bytesDone > prevBytes { bytesDone.increment(by: p.bytesDone - prevBytes) }
            s.last = p
            let due = final || now - s.lastWrite >= Self.writeInterval
            if due { s.lastWrite = now }
            return due
        }
        objectsSelected.set(Double(p.objectsTotal))
        bytesSelected.set(Double(p.bytesTotal))
        workers.set(Double(e.workers))
        requests.update(workerGets: e.getObjectRequests)
        if final { finished.set(1.0) }
        guard due else { return }
        do { try write() } catch {
            let first = state.withLock { s in defer { s.warned = true }; return !s.warned }
            if first { logger.warning("cannot write --metrics-file \(path): \(error)") }
        }
    }

    /// Renders and replaces the file: a temp file beside it (not ending in `.prom`, so a
    /// textfile collector never reads it half-written), then rename.
    private func write() throws {
        process.update()
        updated.set(Date().timeIntervalSince1970)
        let bytes = registry.emitToBuffer()
        let tmp = path + ".tmp.\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw LocalIOError(errno: errno, operation: "create", path: tmp) }
        do { try Syscall.writeAll(fd, bytes, path: tmp) } catch {
            close(fd); unlink(tmp)
            throw error
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw LocalIOError(errno: e, operation: "rename", path: path)
        }
    }
}
