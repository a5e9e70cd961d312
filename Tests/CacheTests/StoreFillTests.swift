@testable import Cache
import Foundation
import Logging
import S3
import SoakCore
import SoakTestSupport
import XCTest
@testable import Engine

/// CacheFiller over a real `FetchEngine` and a `StoreTransport`: every byte goes through the
/// same target opening, block CRCs and completion checks as a worker's, against an in-memory
/// bucket, with faults injected, and without a server.
final class StoreFillTests: XCTestCase {
    private var dir = ""
    private let bs = CacheFormat.blockSize
    private let bucket = StoreFixture.bucket

    override func setUpWithError() throws { dir = try StoreFixture.temporaryDirectory("store-fill") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private struct Rig {
        var cache: DiskCache
        var objects: [CachedObject]
        var engine: FetchEngine
        var transport: StoreTransport
        var filler: CacheFiller
        func stop() { engine.stop(); filler.stop() }
    }

    /// Lists `store`'s objects into a fresh cache and starts an engine over `via` (or `store`).
    private func rig(_ store: MemoryObjectStore, via: ObjectStore? = nil, versionCheck: Bool = false,
                     attempts: Int = 5) throws -> Rig {
        let cache = try DiskCache(directory: dir + "/cache")
        let b = try cache.index.bucketID(endpoint: "e", name: bucket)
        var listed: [ObjectInfo] = []
        try store.listAll(bucket: bucket, prefix: "") { listed.append($0) }
        let objects = try cache.index.recordListing(bucketID: b, objects: listed, stamp: 1).objects
        let transport = StoreTransport(store: via ?? store)
        let settings = StoreFixture.settings(attempts: attempts)
        let engine = FetchEngine(settings: settings, transport: transport, logger: Logger(label: "test"))
        if versionCheck { engine.versionCheck = VersionChecker(store: store, retry: settings.retry, logger: Logger(label: "test")) }
        let filler = CacheFiller(cache: cache, submitter: engine, logger: Logger(label: "test"))
        try engine.start(reportingTo: filler)
        return Rig(cache: cache, objects: objects, engine: engine, transport: transport, filler: filler)
    }

    private func object(_ r: Rig, _ key: String) throws -> CachedObject {
        try XCTUnwrap(r.objects.first { $0.key == key })
    }

    /// Whether the cache holds exactly `data` for `o` (its current generation).
    private func holds(_ r: Rig, _ o: CachedObject, _ data: [UInt8]) throws -> Bool {
        let now = try XCTUnwrap(r.cache.index.object(id: o.id))
        return try r.cache.read(now, offset: 0, count: data.count) == data
    }

    func testAFillLandsEveryByteWithItsBlockCRCsAndItsMD5Checked() throws {
        let big = StoreFixture.content(3 * bs + bs / 2), small = StoreFixture.content(5000, seed: 1)
        let r = try rig(StoreFixture.store(["big": big, "small": small]))
        defer { r.stop() }
        let answers = FillResults()
        for o in r.objects { r.filler.fill(o, bucket: bucket, lane: .bulk) { answers.add($0, $1) } }
        let done = answers.wait(for: 2)
        XCTAssertEqual(done.count, 2)
        XCTAssertTrue(done.allSatisfy { $0.1 == nil }, "\(done)")
        for (key, data) in [("big", big), ("small", small)] {
            let o = try object(r, key)
            let now = try XCTUnwrap(r.cache.index.object(id: o.id))
            XCTAssertEqual(now.cachedBytes, o.size)
            XCTAssertEqual(now.verified, .md5Match, "the whole object was hashed against its ETag")
            XCTAssertTrue(try holds(r, o, data), key)
        }
        let report = try r.cache.verify()
        XCTAssertEqual(report.blocksChecked, 5, "every block's CRC was committed (4 + 1)")
        XCTAssertEqual(report.corruptBlocks, 0, "and each matches the bytes in the file")
        XCTAssertEqual(r.engine.snapshot().bytes, Int64(big.count + small.count))
    }

    /// Throttling and server errors are retried; a body cut mid-way resumes after the blocks
    /// whose CRCs were reported, not from the start.
    func testInjectedFaultsAreRetriedAndACutBodyResumesAtItsLastWholeBlock() throws {
        let data = StoreFixture.content(3 * bs + 10)
        let store = StoreFixture.store(["k": data])
        let faults = FaultInjectingStore(store, failures: [
            S3Error(kind: .http, operation: "GetObject", bucket: bucket, key: "k", status: 503, code: "SlowDown", message: "slow"),
            S3Error(kind: .http, operation: "GetObject", bucket: bucket, key: "k", status: 500, code: "InternalError", message: "oops"),
        ])
        faults.cutNextGet(after: bs + 100, with: S3Error(kind: .transport(curlCode: 56), operation: "GetObject",
                                                         bucket: bucket, key: "k", message: "connection reset"))
        let r = try rig(store, via: faults)
        defer { r.stop() }
        let answers = FillResults()
        r.filler.fill(r.objects[0], bucket: bucket, lane: .bulk) { answers.add($0, $1) }
        let done = answers.wait(for: 1)
        XCTAssertEqual(done.count, 1)
        XCTAssertNil(done.first?.1)
        XCTAssertTrue(try holds(r, r.objects[0], data))
        XCTAssertEqual(try r.cache.verify().corruptBlocks, 0)
        let starts = r.transport.startedOrders.map(\.start)
        XCTAssertEqual(starts.first, 0)
        XCTAssertEqual(starts.last, bs, "the retry after the cut starts at the block after the one that landed")
        let stats = r.engine.snapshot()
        XCTAssertEqual(stats.retries, 3)
        XCTAssertEqual(stats.throttled, 1)
        XCTAssertEqual(stats.bytes, Int64(data.count), "bytes fetched again are not counted twice")
    }

    /// A byte corrupted in flight (same ETag) is caught by the MD5 check: the object is dropped
    /// and fetched again before the fill is answered.
    func testAByteCorruptedInFlightIsCaughtAndFetchedAgain() throws {
        let data = StoreFixture.content(2 * bs + 77)
        let store = StoreFixture.store(["k": data])
        let faults = FaultInjectingStore(store, failures: [])
        faults.corruptNextGet(at: bs + 5)
        let r = try rig(store, via: faults)
        defer { r.stop() }
        let answers = FillResults()
        r.filler.fill(r.objects[0], bucket: bucket, lane: .bulk) { answers.add($0, $1) }
        XCTAssertNil(answers.wait(for: 1).first?.1)
        XCTAssertTrue(try holds(r, r.objects[0], data))
        XCTAssertEqual(try r.cache.index.object(id: r.objects[0].id)?.verified, .md5Match)
        XCTAssertEqual(r.transport.startedOrders.count, 2, "fetched once more after the mismatch")
    }

    /// The object changed after the listing: If-Match fails with 412, HEAD names the new version,
    /// and the fill fails with it, dropping what it had of the old one.
    func testAnObjectChangedAfterListingFailsTheFillAndDropsItsBlocks() throws {
        let store = StoreFixture.store(["k": StoreFixture.content(2 * bs)])
        let r = try rig(store, versionCheck: true)
        defer { r.stop() }
        let newer = StoreFixture.content(2 * bs, seed: 9)
        let etag = store.put(bucket: bucket, key: "k", newer)
        let answers = FillResults()
        r.filler.fill(r.objects[0], bucket: bucket, lane: .bulk) { answers.add($0, $1) }
        let done = answers.wait(for: 1)
        guard case .replaced(_, let now) = try XCTUnwrap(done.first?.1) else { return XCTFail("\(done)") }
        XCTAssertEqual(now.etag, etag)
        XCTAssertEqual(try r.cache.index.object(id: r.objects[0].id)?.cachedBytes, 0)
        XCTAssertTrue(r.transport.startedOrders.allSatisfy { $0.etag == r.objects[0].etag }, "sent with If-Match")
        XCTAssertEqual(r.engine.snapshot().getObjectRequests?["412"], 1)
    }

    /// An executor that dies mid-order: the order is lost, requeued, and fetched whole again (a
    /// block order keeps only blocks whose CRCs were reported by a finished attempt).
    func testAnOrderLostWithItsExecutorIsFetchedAgain() throws {
        let data = StoreFixture.content(3 * bs)
        let store = StoreFixture.store(["k": data])
        let r = try rig(store)
        defer { r.stop() }
        r.transport.killNext(afterBytes: bs + 10)
        let answers = FillResults()
        r.filler.fill(r.objects[0], bucket: bucket, lane: .bulk) { answers.add($0, $1) }
        XCTAssertNil(answers.wait(for: 1).first?.1)
        XCTAssertTrue(try holds(r, r.objects[0], data))
        XCTAssertEqual(r.transport.startedOrders.map(\.start), [0, 0])
        XCTAssertEqual(r.engine.snapshot().workerRestarts, 1)
        XCTAssertEqual(r.engine.snapshot().bytes, Int64(data.count))
    }

    /// Executors that keep dying fail the order after the retry budget, naming the cause.
    func testAnOrderThatKeepsKillingItsExecutorsFails() throws {
        let store = StoreFixture.store(["k": StoreFixture.content(bs)])
        let r = try rig(store, attempts: 2)
        defer { r.stop() }
        r.transport.killNext(afterBytes: 0)
        r.transport.killNext(afterBytes: 10)
        let answers = FillResults()
        r.filler.fill(r.objects[0], bucket: bucket, lane: .bulk) { answers.add($0, $1) }
        let done = answers.wait(for: 1)
        guard case .fetch(let e) = try XCTUnwrap(done.first?.1) else { return XCTFail("\(done)") }
        XCTAssertTrue(e.message.contains("died 2 times"), e.message)
        XCTAssertEqual(try r.cache.index.object(id: r.objects[0].id)?.cachedBytes, 0)
    }
}
