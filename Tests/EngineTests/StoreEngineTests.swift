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
