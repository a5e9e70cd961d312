import Foundation
import Logging
import S3
import SoakCore
import XCTest
@testable import Engine

/// The engine over the worker-process pool, against fake worker processes (shell scripts
/// speaking — or breaking — the wire protocol): what only processes do (garbage on the pipe,
/// exits, a closed stdin, hangs, credentials sent down the pipe) is tested without a server.
/// The scheduler's own handling of retries, stalls, lost orders, rate limits and the bulk cap
/// is tested over a `StoreTransport` (`StoreEngineTests`).
final class FetchEngineTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "soak-engine-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private func script(_ body: String) throws -> String {
        let path = dir + "/worker.sh"
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    private func engine(_ exe: String, attempts: Int, done: @escaping @Sendable (FetchCompletion) -> Void) throws -> FetchEngine {
        var s = EngineSettings()
        s.initialWorkers = 1
        s.retry = RetryPolicy(maxAttempts: attempts, baseDelay: 0.01, maxDelay: 0.05)
        s.hangTimeout = 2
        let builder = S3RequestBuilder(endpoint: try S3Endpoint(url: "http://127.0.0.1:9", region: "us-east-1"),
                                       credentials: Credentials(accessKeyId: "k", secretAccessKey: "s"))
        return FetchEngine(settings: s, workerExecutable: exe, builder: builder,
                           logger: Logger(label: "test"), onComplete: done)
    }

    private final class Box: @unchecked Sendable {
        let lock = NSLock()
        var completions: [FetchCompletion] = []
        func add(_ c: FetchCompletion) { lock.lock(); completions.append(c); lock.unlock() }
        var count: Int { lock.lock(); defer { lock.unlock() }; return completions.count }
    }

    private func wait(_ box: Box, for n: Int, seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while box.count < n && Date() < deadline { usleep(20_000) }
    }

    /// Runs one order through an engine whose workers are `worker` (a shell script body) and
    /// returns what completed, the engine's counters and the worker PIDs seen before stopping.
    private func runOne(worker: String, attempts: Int, tag: Int = 0)
        throws -> (completions: [FetchCompletion], stats: EngineStats, pids: [pid_t]) {
        let box = Box()
        let e = try engine(try script(worker), attempts: attempts) { box.add($0) }
        try e.start()
        e.submit(bucket: "b", key: "k", etag: nil, range: 0...9, path: dir + "/out", fileOffset: 0, tag: tag)
        wait(box, for: 1, seconds: 20)
        let stats = e.snapshot(), pids = e.workerPIDs()
        e.stop()
        return (box.completions, stats, pids)
    }

    func testWorkerThatSpeaksGarbageIsReplacedAndThePoisonOrderFailsAfterMaxAttempts() throws {
        // Reads its configuration, answers nonsense, then lingers.
        let r = try runOne(worker: "read cfg\necho 'this is not a report'\nsleep 30", attempts: 3, tag: 7)
        XCTAssertEqual(r.completions.count, 1, "the order must end, not loop forever")
        let c = try XCTUnwrap(r.completions.first)
        XCTAssertEqual(c.tag, 7)
        XCTAssertTrue(c.error?.message.contains("died 3 times") ?? false, "\(String(describing: c.error))")
        XCTAssertGreaterThanOrEqual(r.stats.workerRestarts, 3)
    }

    /// A worker that stops reading its orders but stays alive (its stdout open, so no EOF): the
    /// engine's next write to it gets EPIPE. That must not be a SIGPIPE that kills the process
    /// the engine runs in; the worker is replaced and the order ends.
    func testWorkerThatClosesItsInputIsReplacedWithoutKillingTheEngine() throws {
        let box = Box()
        let e = try engine(try script("read cfg\nexec 0<&-\nsleep 30"), attempts: 2) { box.add($0) }
        try e.start()
        usleep(300_000)  // the worker has read its configuration and closed its input
        e.submit(bucket: "b", key: "k", etag: nil, range: 0...9, path: dir + "/out", fileOffset: 0, tag: 5)
        wait(box, for: 1, seconds: 20)
        let stats = e.snapshot()
        e.stop()
        XCTAssertEqual(box.completions.count, 1, "the order must end")
        XCTAssertEqual(box.completions.first?.tag, 5)
        XCTAssertNotNil(box.completions.first?.error)
        XCTAssertGreaterThanOrEqual(stats.workerRestarts, 1)
    }

    func testWorkerThatExitsIsReplaced() throws {
        let r = try runOne(worker: "read cfg\nexit 3", attempts: 2)
        XCTAssertEqual(r.completions.count, 1)
        XCTAssertNotNil(r.completions.first?.error)
    }

    /// `updateCredentials` reaches a live worker over its pipe (a `credentials` line after its
    /// `configure`), and a worker started later is configured with the new ones.
    func testNewCredentialsGoToLiveWorkersAndNewOnes() throws {
        let log = dir + "/orders"
        let box = Box()
        // Records every line it is sent; exits on the first order, so a second worker starts.
        let e = try engine(try script("""
            while read -r line; do
              printf '%s\n' "$line" >> '\(log)'
              case "$line" in F*) exit 0;; esac
            done
            """), attempts: 3) { box.add($0) }
        try e.start()
        e.updateCredentials(Credentials(accessKeyId: "AKIDROTATED", secretAccessKey: "rotated-secret", sessionToken: "t2"))
        usleep(200_000)
        e.submit(bucket: "b", key: "k", etag: nil, range: 0...9, path: dir + "/out", fileOffset: 0, tag: 1)
        let deadline = Date().addingTimeInterval(20)
        func lines() -> [String] { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        while lines().filter({ $0.hasPrefix("J{\"configure\"") }).count < 2 && Date() < deadline { usleep(50_000) }
        e.stop()
        let seen = lines()
        let configures = seen.filter { $0.hasPrefix("J{\"configure\"") }
        XCTAssertGreaterThanOrEqual(configures.count, 2, "a replacement worker started: \(seen)")
        XCTAssertTrue(configures.first?.contains("\"accessKeyId\":\"k\"") ?? false, "the first worker got the old key")
        XCTAssertTrue(configures.dropFirst().allSatisfy { $0.contains("AKIDROTATED") && $0.contains("rotated-secret") },
                      "later workers are configured with the new credentials: \(configures)")
        let updates = seen.filter { $0.hasPrefix("J{\"credentials\"") }
        XCTAssertEqual(updates.count, 1, "the live worker was sent the new credentials once: \(seen)")
        XCTAssertTrue(updates.first?.contains("AKIDROTATED") ?? false)
        let first = try XCTUnwrap(seen.firstIndex { $0.hasPrefix("J{\"credentials\"") })
        XCTAssertTrue(seen[..<first].contains { $0.hasPrefix("J{\"configure\"") }, "credentials follow the configure")
    }

    func testSilentWorkerIsDeclaredHungAndKilled() throws {
        // Accepts orders but never reports anything: only the hang detector can notice.
        let r = try runOne(worker: "read cfg\nsleep 60", attempts: 2)
        XCTAssertEqual(r.completions.count, 1)
        XCTAssertTrue(r.completions.first?.error?.message.contains("hung") ?? false,
                      "\(String(describing: r.completions.first?.error))")
        for p in r.pids { XCTAssertNotEqual(kill(p, 0), 0, "worker \(p) still alive after stop") }
    }
}

/// Lanes through the real dispatch path: a worker saturated with bulk orders still receives an
/// urgent one at once (the priority reserve), and the worker starts it ahead of queued bulk work.
final class EngineLaneTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "soak-lanes-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A started engine whose workers take orders and never finish them: each order's line is
    /// appended to `dir/orders` (see `orders()`).
    private func recordingEngine(_ configure: (inout EngineSettings) -> Void) throws -> (FetchEngine, EngineSettings) {
        let exe = dir + "/worker.sh"
        try "#!/bin/sh\nread cfg\nwhile IFS= read -r line; do printf '%s\\n' \"$line\" >> \(dir)/orders; done\n"
            .write(toFile: exe, atomically: true, encoding: .utf8)
        chmod(exe, 0o755)
        var s = EngineSettings()
        s.hangTimeout = 60
        configure(&s)
        let builder = S3RequestBuilder(endpoint: try S3Endpoint(url: "http://127.0.0.1:9", region: "us-east-1"),
                                       credentials: Credentials(accessKeyId: "k", secretAccessKey: "s"))
        let e = FetchEngine(settings: s, workerExecutable: exe, builder: builder, logger: Logger(label: "t")) { _ in }
        try e.start()
        return (e, s)
    }

    /// The order lines the workers received so far.
    private func orders() -> [String] {
        ((try? String(contentsOfFile: dir + "/orders", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    private func submit(_ e: FetchEngine, _ key: String, _ lane: Lane) {
        e.submit(bucket: "b", key: key, etag: nil, range: 0...9, path: dir + "/x", fileOffset: 0, lane: lane)
    }

    func testUrgentOrderReachesASaturatedWorkerAtOnce() throws {
        let (e, s) = try recordingEngine { $0.initialWorkers = 1; $0.maxWorkers = 1 }
        defer { e.stop() }
        for i in 0..<100 { submit(e, "bulk\(i)", .bulk) }
        let capacity = s.slotsPerWorker + s.prefetchDepth
        var deadline = Date().addingTimeInterval(10)
        while orders().count < capacity && Date() < deadline { usleep(20_000) }
        usleep(200_000)
        XCTAssertEqual(orders().count, capacity, "the worker is saturated with bulk work")
        submit(e, "urgent", .urgent)
        var lines: [String] = []
        deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            lines = orders()
            if lines.contains(where: { $0.contains("\turgent\t") }) { break }
            usleep(20_000)
        }
        XCTAssertTrue(lines.contains { $0.contains("\turgent\t") }, "the urgent order never reached the saturated worker")
        XCTAssertEqual(lines.filter { $0.contains("\tbulk") }.count, capacity, "bulk work stops at the worker's capacity")
        XCTAssertEqual(e.snapshot().queued, 100 - capacity)
    }

    func testWorkerStartsHigherLanesFirstAndGivesThemSpareSlots() throws {
        let builder = S3RequestBuilder(endpoint: try S3Endpoint(url: "http://127.0.0.1:9", region: "us-east-1"),
                                       credentials: Credentials(accessKeyId: "k", secretAccessKey: "s"))
        let w = try WorkerLoop(config: WorkerConfig(builder: builder, transport: TransportOptions(), slots: 4, logLevel: "error"),
                               logger: Logger(label: "t"))
        func order(_ id: Int, _ lane: Lane) -> FetchOrder {
            FetchOrder(id: id, bucket: "b", key: "k", etag: nil, start: 0, end: 0, path: "/dev/null", fileOffset: 0, lane: lane)
        }
        w.handle(.fetch(order(1, .bulk)))
        w.handle(.fetch(order(2, .bulk)))
        w.handle(.fetch(order(3, .urgent)))
        w.handle(.fetch(order(4, .readAhead)))
        w.handle(.fetch(order(5, .urgent)))
        XCTAssertEqual(w.waiting.map(\.id), [3, 5, 4, 1, 2])
        w.handle(.promote(id: 2, lane: .urgent))
        XCTAssertEqual(w.waiting.map(\.id), [3, 5, 2, 4, 1])
        XCTAssertEqual(w.limit(for: .bulk), 4)
        XCTAssertGreaterThan(w.limit(for: .urgent), 4)
    }

    func testPromotedOrderLeavesTheBulkLane() throws {
        var q = WorkQueue<Int>()
        for i in 0..<5 { q.push(i, lane: .bulk) }
        XCTAssertNotNil(q.remove(where: { $0 == 3 }))
        q.pushFront(3, lane: .urgent)
        XCTAssertEqual(q.pop(now: 0)?.0, 3)
        XCTAssertEqual(q.pop(now: 0)?.0, 0)
    }
}
