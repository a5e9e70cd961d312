@testable import Cache
import Foundation
import Logging
import S3
import SoakCore
import SoakTestSupport
import XCTest
@testable import Engine

/// Prewarmer over a `StoreTransport`: the listing recorded, every object filled, checked and
/// counted, against an in-memory bucket, without a server or a worker process.
final class StorePrewarmTests: XCTestCase {
    private var dir = ""
    private let bucket = StoreFixture.bucket
    private let bs = CacheFormat.blockSize

    override func setUpWithError() throws { dir = try StoreFixture.temporaryDirectory("store-prewarm") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private func prewarm(_ store: ObjectStore, via: ObjectStore? = nil, cache: DiskCache) throws -> (PrewarmSummary, StoreTransport) {
        let t = StoreTransport(store: via ?? store)
        let p = Prewarmer(options: PrewarmOptions(bucket: bucket, prefix: "", endpoint: "e", filter: KeyFilter([])),
                          store: store, cache: cache, builder: try StoreFixture.builder(), settings: StoreFixture.settings(),
                          workerExecutable: "/nonexistent", logger: Logger(label: "test"), transport: { t })
        return (try p.run(), t)
    }

    private func cached(_ cache: DiskCache, _ key: String) throws -> CachedObject? {
        let b = try cache.index.bucketID(endpoint: "e", name: bucket)
        return try cache.index.lookup(bucketID: b, key: key)
    }

    func testEveryObjectIsFilledCheckedAndASecondRunFetchesNothing() throws {
        let objects = ["a": StoreFixture.content(2 * bs + 3), "b/c": StoreFixture.content(4000, seed: 1), "e": []]
        let store = StoreFixture.store(objects)
        let cache = try DiskCache(directory: dir)
        let (summary, _) = try prewarm(store, cache: cache)
        XCTAssertEqual(summary.failures.map(\.description), [])
        XCTAssertEqual(summary.listed, 3)
        XCTAssertEqual(summary.bytesFetched, 2 * bs + 3 + 4000)
        for (key, data) in objects {
            let o = try XCTUnwrap(cached(cache, key), key)
            XCTAssertEqual(o.cachedBytes, o.size, key)
            XCTAssertTrue(try cache.read(o, offset: 0, count: data.count) ?? [] == data, key)
            if !data.isEmpty { XCTAssertEqual(o.verified, .md5Match, key) }
        }
        XCTAssertEqual(try cache.verify().corruptBlocks, 0)

        let (again, transport) = try prewarm(store, cache: cache)
        XCTAssertEqual(again.failures.map(\.description), [])
        XCTAssertEqual(again.alreadyCached, 3)
        XCTAssertEqual(transport.startedOrders.count, 0, "a cached bucket is not fetched again")
    }

    func testFaultsAreRetriedAndAnUnfetchableObjectIsReported() throws {
        let store = StoreFixture.store(["ok": StoreFixture.content(bs + 1), "denied": StoreFixture.content(10, seed: 1)])
        let faults = FaultInjectingStore(store, failures: [
            S3Error(kind: .http, operation: "GetObject", bucket: bucket, status: 503, code: "SlowDown", message: "slow"),
        ])
        faults.refuseGets(key: "denied", from: 0, with: S3Error(
            kind: .http, operation: "GetObject", bucket: bucket, key: "denied", status: 403, code: "AccessDenied",
            message: "denied"))
        faults.cutNextGet(after: 100, with: S3Error(kind: .transport(curlCode: 56), operation: "GetObject",
                                                    bucket: bucket, message: "reset"))
        let cache = try DiskCache(directory: dir)
        let (summary, _) = try prewarm(store, via: faults, cache: cache)
        XCTAssertEqual(summary.failures.map(\.key), ["denied"])
        XCTAssertEqual(summary.filled, 1)
        let ok = try XCTUnwrap(cached(cache, "ok"))
        XCTAssertEqual(ok.cachedBytes, ok.size)
        XCTAssertTrue(try cache.read(ok, offset: 0, count: Int(ok.size)) ?? [] == StoreFixture.content(bs + 1))
        XCTAssertEqual(try cached(cache, "denied")?.cachedBytes, 0)
    }

    /// An object overwritten after the listing: the new version is recorded and filled, never
    /// bytes of both.
    func testAnObjectChangedAfterListingIsFilledAtItsNewVersion() throws {
        let store = StoreFixture.store(["k": StoreFixture.content(bs + 5)])
        let newer = StoreFixture.content(bs + 5, seed: 7)
        let listing = ListingHook(store) { store.put(bucket: StoreFixture.bucket, key: "k", newer) }
        let cache = try DiskCache(directory: dir)
        let (summary, _) = try prewarm(listing, cache: cache)
        XCTAssertEqual(summary.failures.map(\.description), [])
        let o = try XCTUnwrap(cached(cache, "k"))
        XCTAssertEqual(o.etag, try store.head(bucket: bucket, key: "k").etag, "the new version is recorded")
        XCTAssertEqual(o.cachedBytes, o.size)
        XCTAssertTrue(try cache.read(o, offset: 0, count: Int(o.size)) ?? [] == newer)
    }
}
