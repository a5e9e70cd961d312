import Foundation
import Logging
import S3
import SoakCore
import XCTest
@testable import Prefetcher

/// The engine against fake worker processes (shell scripts speaking — or breaking — the wire
/// protocol), so crash and garbage handling is tested without a server.
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

    func testWorkerThatExitsIsReplaced() throws {
        let r = try runOne(worker: "read cfg\nexit 3", attempts: 2)
        XCTAssertEqual(r.completions.count, 1)
        XCTAssertNotNil(r.completions.first?.error)
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
