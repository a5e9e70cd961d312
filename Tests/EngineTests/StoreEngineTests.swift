import Foundation
import Logging
import S3
import SoakCore
import SoakTestSupport
import XCTest
@testable import Engine

/// The scheduler over a `StoreTransport`: what it does with a transport's events, in one process.
final class StoreEngineTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws { dir = try StoreFixture.temporaryDirectory("store-engine") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private final class Completions: @unchecked Sendable {
        let cond = NSCondition()
        var all: [FetchCompletion] = []
        func add(_ c: FetchCompletion) { cond.lock(); all.append(c); cond.broadcast(); cond.unlock() }
        func wait(for n: Int) -> [FetchCompletion] {
            cond.lock(); defer { cond.unlock() }
            let deadline = Date().addingTimeInterval(20)
            while all.count < n && cond.wait(until: deadline) {}
            return all
        }
    }

    /// An engine over `transport` whose completions go to the returned collector (started).
    private func engine(_ transport: StoreTransport, attempts: Int = 5,
                        _ configure: (inout EngineSettings) -> Void = { _ in }) throws -> (FetchEngine, Completions) {
        let done = Completions()
        var s = StoreFixture.settings(attempts: attempts)
        configure(&s)
        let e = FetchEngine(settings: s, transport: transport, logger: Logger(label: "test"), onComplete: { done.add($0) })
        try e.start()
        return (e, done)
    }

    private func contents(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { [UInt8]($0) } }

    /// An attempt the stall watch gave up on is retried after the bytes it wrote, and says so
    /// (its stall bounds double); a retry after a rate limit keeps that count and its place.
    func testAStalledAttemptResumesAndItsRetryCarriesTheStallCount() throws {
        let data = StoreFixture.content(100_000)
        let transport = StoreTransport(store: StoreFixture.store(["k": data]), threads: 1)
        transport.script(.stall(afterBytes: 30_000), key: "k")
        transport.script(.throttle(retryAfter: nil), key: "k")
        let (e, done) = try engine(transport)
        defer { e.stop() }
        let path = dir + "/out"
        e.submit(bucket: StoreFixture.bucket, key: "k", etag: nil, range: 0...99_999, path: path, fileOffset: 0)
        let c = done.wait(for: 1)
        XCTAssertEqual(c.count, 1)
        XCTAssertNil(c.first?.error)
        XCTAssertEqual(transport.startedOrders.map(\.stalls), [0, 1, 1])
        XCTAssertEqual(transport.startedOrders.map(\.start), [0, 30_000, 30_000])
        XCTAssertTrue(contents(path) == data)
        let stats = e.snapshot()
        XCTAssertEqual(stats.retries, 2)
        XCTAssertEqual(stats.throttled, 1)
        XCTAssertEqual(stats.bytes, 100_000)
        XCTAssertEqual(stats.getObjectRequests, ["stalled": 1, "503": 1, "ok": 1])
    }

    /// A block order that stalls keeps the blocks whose CRCs arrived: the retry starts at the
    /// first block boundary after them, and the completion's CRCs cover every block once.
    func testAStalledBlockOrderResumesAtABlockBoundary() throws {
        let bs: Int64 = 4096
        let data = StoreFixture.content(3 * bs + 100)
        let transport = StoreTransport(store: StoreFixture.store(["k": data]), threads: 1)
        transport.script(.stall(afterBytes: bs + 10), key: "k")
        let (e, done) = try engine(transport)
        defer { e.stop() }
        let path = dir + "/blocks"
        e.submit(bucket: StoreFixture.bucket, key: "k", etag: nil, range: 0...(Int64(data.count) - 1), path: path,
                 fileOffset: 0, blockSize: bs)
        let c = try XCTUnwrap(done.wait(for: 1).first)
        XCTAssertNil(c.error)
        XCTAssertEqual(transport.startedOrders.map(\.start), [0, bs])
        let expected = (0..<4).map { i -> UInt32 in
            var crc = CRC32C()
            data[Int(Int64(i) * bs)..<min(data.count, Int(Int64(i + 1) * bs))].withUnsafeBytes { crc.update($0) }
            return crc.value
        }
        XCTAssertEqual(c.crcs, expected)
        XCTAssertTrue(contents(path) == data)
    }

    /// An executor gone silent holding an order is reported lost as hung: the order is
    /// requeued from what it reported written and completes.
    func testAHungOrderIsRequeuedFromItsLastReportedBytes() throws {
        let data = StoreFixture.content(50_000)
        let transport = StoreTransport(store: StoreFixture.store(["k": data]), threads: 1)
        transport.script(.hang(afterBytes: 20_000, seconds: 0.05), key: "k")
        let (e, done) = try engine(transport)
        defer { e.stop() }
        let path = dir + "/hung"
        e.submit(bucket: StoreFixture.bucket, key: "k", etag: nil, range: 0...49_999, path: path, fileOffset: 0)
        XCTAssertNil(done.wait(for: 1).first?.error)
        XCTAssertEqual(transport.startedOrders.map(\.start), [0, 20_000])
        XCTAssertTrue(contents(path) == data)
        XCTAssertEqual(e.snapshot().workerRestarts, 1)
    }

    /// An order whose executors keep hanging fails after the retry budget, naming the cause.
    func testAnOrderThatKeepsHangingFails() throws {
        let transport = StoreTransport(store: StoreFixture.store(["k": StoreFixture.content(1000)]), threads: 1)
        for _ in 0..<3 { transport.script(.hang(afterBytes: 0, seconds: 0.01), key: "k") }
        let (e, done) = try engine(transport, attempts: 3)
        defer { e.stop() }
        e.submit(bucket: StoreFixture.bucket, key: "k", etag: nil, range: 0...999, path: dir + "/h", fileOffset: 0, tag: 7)
        let c = try XCTUnwrap(done.wait(for: 1).first)
        XCTAssertEqual(c.tag, 7)
        let message = c.error?.message ?? ""
        XCTAssertTrue(message.contains("died 3 times") && message.contains("hung"), message)
        XCTAssertEqual(transport.startedOrders.count, 3, "not tried again after the budget")
        XCTAssertEqual(transport.scriptedLeft, 0)
    }

    /// A rate limit's Retry-After holds the retry back at least that long.
    func testARateLimitedOrderWaitsOutItsRetryAfter() throws {
        let transport = StoreTransport(store: StoreFixture.store(["k": StoreFixture.content(10)]), threads: 1)
        transport.script(.throttle(retryAfter: 0.3), key: "k")
        let (e, done) = try engine(transport)
        defer { e.stop() }
        let t0 = MonotonicTime.now()
        e.submit(bucket: StoreFixture.bucket, key: "k", etag: nil, range: 0...9, path: dir + "/t", fileOffset: 0)
        XCTAssertNil(done.wait(for: 1).first?.error)
        XCTAssertGreaterThanOrEqual(MonotonicTime.now() - t0, 0.3, "the retry came before Retry-After")
        XCTAssertEqual(e.snapshot().throttled, 1)
    }

    /// Orders that keep failing retryably run out of attempts, and the error names them.
    func testAnOrderThatRunsOutOfAttemptsNamesThemInItsError() throws {
        let refused = S3Error(kind: .transport(curlCode: 7), operation: "GetObject", bucket: StoreFixture.bucket,
                              key: "k", message: "connection refused")
        let store = FaultInjectingStore(StoreFixture.store(["k": StoreFixture.content(10)]),
                                        failures: Array(repeating: refused, count: 4))
        let transport = StoreTransport(store: store, threads: 1)
        let (e, done) = try engine(transport, attempts: 4)
        defer { e.stop() }
        e.submit(bucket: StoreFixture.bucket, key: "k", etag: nil, range: 0...9, path: dir + "/r", fileOffset: 0)
        let err = try XCTUnwrap(done.wait(for: 1).first?.error)
        XCTAssertEqual(err.attempts, 4)
        let stats = e.snapshot()
        XCTAssertEqual(stats.retries, 3)
        XCTAssertEqual(stats.getObjectRequests, ["transport_error": 4])  // soak_s3_requests_total's figures
        XCTAssertEqual(err.description, "GetObject s3://b/k failed after 4 attempts: connection refused")
    }

    /// `maxBulkOrders` caps the bulk orders out at once; read lanes are not capped.
    func testBulkCapLimitsBulkOrdersButNotReads() throws {
        let keys = (0..<20).map { "bulk\($0)" } + (0..<5).map { "read\($0)" }
        let transport = StoreTransport(store: StoreFixture.store(Dictionary(uniqueKeysWithValues: keys.map { ($0, [0]) })),
                                       threads: 2, capacity: 100)
        for k in keys { transport.script(.hang(afterBytes: 0, seconds: nil), key: k) }
        let (e, _) = try engine(transport) { $0.maxBulkOrders = 3 }
        defer { e.stop() }
        for k in keys {
            e.submit(bucket: StoreFixture.bucket, key: k, etag: nil, range: 0...0, path: dir + "/x", fileOffset: 0,
                     lane: k.hasPrefix("read") ? .readAhead : .bulk)
        }
        let deadline = Date().addingTimeInterval(10)
        while e.snapshot().inflight < 8 && Date() < deadline { usleep(10_000) }
        usleep(100_000)  // no more go out
        let stats = e.snapshot()
        XCTAssertEqual(stats.inflight, 8, "3 bulk orders (the cap) and the 5 reads")
        XCTAssertEqual(stats.queuedByLane[Lane.bulk.rawValue], 17)
        XCTAssertEqual(stats.queuedByLane[Lane.readAhead.rawValue], 0)
    }

    /// An engine following a `CredentialKeeper` passes its refreshes to the transport.
    func testFollowingAKeeperPassesRefreshesToTheTransport() throws {
        struct Rotating: CredentialProvider {
            let name = "test source"
            func load() throws -> Credentials? {
                Credentials(accessKeyId: "AKIDREFRESHED", secretAccessKey: "refreshed-secret", sessionToken: "t2",
                            expiration: Date(timeIntervalSince1970: 3_000_000 + 3600))
            }
        }
        final class Clock: @unchecked Sendable {  // test clock: `t` is guarded by `lock`
            let lock = NSLock()
            var t = Date(timeIntervalSince1970: 3_000_000)
            var now: Date { lock.lock(); defer { lock.unlock() }; return t }
        }
        let clock = Clock()
        let first = Credentials(accessKeyId: "k", secretAccessKey: "s", sessionToken: "t1", expiration: clock.now + 60)
        let keeper = CredentialKeeper(credentials: first, provider: Rotating(), logger: Logger(label: "test"),
                                      now: { clock.now })
        let transport = StoreTransport(store: StoreFixture.store([:]))
        let (e, _) = try engine(transport)
        e.follow(keeper)
        defer { e.stop() }
        clock.lock.lock(); clock.t += 50; clock.lock.unlock()
        XCTAssertTrue(keeper.tick())
        let ids = transport.credentialUpdates.map(\.accessKeyId)
        XCTAssertEqual(ids.first, "k", "the current credentials at once")
        XCTAssertEqual(ids.last, "AKIDREFRESHED", "then the refresh")
    }

    /// A named file keeps what its lost attempt reported written: the retry starts there.
    func testALostOrderResumesFromItsLastReportedOffset() throws {
        let data = StoreFixture.content(100_000)
        let transport = StoreTransport(store: StoreFixture.store(["k": data]), threads: 1)
        let done = Completions()
        let engine = FetchEngine(settings: StoreFixture.settings(), transport: transport, logger: Logger(label: "test"),
                                 onComplete: { done.add($0) })
        try engine.start()
        defer { engine.stop() }
        transport.killNext(afterBytes: 40_000)
        let path = dir + "/out"
        engine.submit(bucket: StoreFixture.bucket, key: "k", etag: nil, range: 0...99_999, path: path, fileOffset: 0)
        let c = done.wait(for: 1)
        XCTAssertEqual(c.count, 1)
        XCTAssertNil(c.first?.error)
        XCTAssertEqual(transport.startedOrders.map(\.start), [0, 40_000])
        XCTAssertEqual(transport.startedOrders.map(\.fileOffset), [0, 40_000])
        XCTAssertTrue(FileManager.default.contents(atPath: path).map { [UInt8]($0) } == data)
        let stats = engine.snapshot()
        XCTAssertEqual(stats.bytes, 100_000, "bytes kept from the lost attempt are not counted again")
        XCTAssertEqual(stats.workerRestarts, 1)
    }

    /// A non-retryable error completes the order at once with the bytes' error.
    func testANonRetryableErrorFailsAtOnce() throws {
        let store = StoreFixture.store([:])
        let transport = StoreTransport(store: store)
        let done = Completions()
        let engine = FetchEngine(settings: StoreFixture.settings(), transport: transport, logger: Logger(label: "test"),
                                 onComplete: { done.add($0) })
        try engine.start()
        defer { engine.stop() }
        engine.submit(bucket: StoreFixture.bucket, key: "missing", etag: nil, range: 0...9, path: dir + "/x", fileOffset: 0)
        let c = done.wait(for: 1)
        XCTAssertEqual(c.first?.error?.status, 404)
        XCTAssertEqual(transport.startedOrders.count, 1, "a 404 is not retried")
    }

    /// Refreshed credentials reach the transport.
    func testNewCredentialsReachTheTransport() throws {
        let transport = StoreTransport(store: StoreFixture.store([:]))
        let engine = FetchEngine(settings: StoreFixture.settings(), transport: transport, logger: Logger(label: "test"))
        try engine.start()
        defer { engine.stop() }
        let fresh = Credentials(accessKeyId: "new", secretAccessKey: "s2")
        engine.updateCredentials(fresh)
        XCTAssertEqual(transport.credentialUpdates, [fresh])
    }
}
