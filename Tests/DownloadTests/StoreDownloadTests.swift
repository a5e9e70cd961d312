import CSys
@testable import Download
import Foundation
import Logging
import S3
import SoakCore
import SoakTestSupport
import XCTest
@testable import Engine

/// Downloader over a `StoreTransport`: files are written, published and stamped exactly as the
/// workers do it (shared `FetchTargets`/`FetchRegion`), against an in-memory bucket, without a
/// server or a worker process.
final class StoreDownloadTests: XCTestCase {
    private var dest = ""
    private let bucket = StoreFixture.bucket

    override func setUpWithError() throws { dest = try StoreFixture.temporaryDirectory("store-download") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dest) }

    /// Lists through `store`; the transport GETs from `via` (or `store`).
    private func download(_ store: ObjectStore, via: ObjectStore? = nil, threads: Int = 3,
                          transport: StoreTransport? = nil) throws -> (DownloadSummary, StoreTransport) {
        var options = DownloadOptions(bucket: bucket, prefix: "", destination: dest, filter: KeyFilter([]))
        options.singlePartLimit = 100_000
        options.partSize = 40_000
        let t = transport ?? StoreTransport(store: via ?? store, threads: threads)
        let d = Downloader(options: options, store: store, builder: try StoreFixture.builder(),
                           settings: StoreFixture.settings(), workerExecutable: "/nonexistent", logger: Logger(label: "test"),
                           transport: { t })
        return (try d.run(), t)
    }

    private func file(_ rel: String) -> [UInt8]? {
        FileManager.default.contents(atPath: dest + "/" + rel).map { [UInt8]($0) }
    }

    private func etagXattr(_ rel: String) -> String? {
        var buf = [UInt8](repeating: 0, count: 128)
        let n = csys_getxattr(dest + "/" + rel, PublishSpec.etagXattr, &buf, buf.count)
        return n < 0 ? nil : String(decoding: buf[0..<n], as: UTF8.self)
    }

    private func mtime(_ rel: String) -> Double? {
        var st = stat()
        guard stat(dest + "/" + rel, &st) == 0 else { return nil }
        return Double(st.st_mtim.tv_sec)
    }

    func testFilesArePublishedWithTheirETagXattrAndMtime() throws {
        let objects = ["a.txt": StoreFixture.content(5000), "d/e/b.bin": StoreFixture.content(70_000, seed: 1),
                       "big.bin": StoreFixture.content(150_001, seed: 2), "empty": []]
        let store = StoreFixture.store(objects)
        let (summary, transport) = try download(store)
        XCTAssertEqual(summary.failures.map(\.description), [])
        XCTAssertEqual(summary.downloaded, 4)
        XCTAssertEqual(summary.bytesFetched, 225_001)
        for (key, data) in objects {
            XCTAssertTrue(file(key) == data, "\(key) holds the object's bytes")
            XCTAssertEqual(etagXattr(key), try store.head(bucket: bucket, key: key).etag, key)
            XCTAssertEqual(mtime(key), 1_700_000_000, key)
        }
        XCTAssertEqual(transport.startedOrders.filter { $0.key == "big.bin" }.count, 4, "150 kB in 40 kB parts")
        XCTAssertTrue(transport.startedOrders.filter { $0.key != "big.bin" }.allSatisfy { $0.publish != nil },
                      "small objects are published by the transport")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: dest + "/.soak-partial")) ?? []
        XCTAssertEqual(left, [], "no temporary file is left behind")
        XCTAssertEqual(Set(try FileManager.default.subpathsOfDirectory(atPath: dest)),
                       ["a.txt", "d", "d/e", "d/e/b.bin", "big.bin", "empty"])
    }

    func testARerunSkipsCompleteFilesAndResumesOnlyTheMissingParts() throws {
        let big = StoreFixture.content(150_001, seed: 3)
        let store = StoreFixture.store(["big.bin": big, "a.txt": StoreFixture.content(10)])
        let faults = FaultInjectingStore(store, failures: [])
        faults.refuseGets(key: "big.bin", from: 120_000, with: S3Error(
            kind: .http, operation: "GetObject", bucket: bucket, key: "big.bin", status: 403, code: "AccessDenied",
            message: "denied"))
        let (first, _) = try download(store, via: faults, threads: 1)
        XCTAssertEqual(first.failures.map(\.key), ["big.bin"])
        XCTAssertEqual(first.downloaded, 1)
        XCTAssertNil(file("big.bin"), "nothing half-written under its name")

        let (second, transport) = try download(store)
        XCTAssertEqual(second.failures.map(\.description), [])
        XCTAssertEqual(second.skippedUpToDate, 1, "a.txt is complete")
        XCTAssertEqual(transport.startedOrders.map(\.start), [120_000], "only the part that failed is fetched")
        XCTAssertTrue(file("big.bin") == big)
        XCTAssertEqual(etagXattr("big.bin"), try store.head(bucket: bucket, key: "big.bin").etag)
    }

    func testFailuresAreReportedPerKeyAndTheRestIsDownloaded() throws {
        let store = StoreFixture.store(["ok": StoreFixture.content(100), "denied": StoreFixture.content(100, seed: 1),
                                        "gone": StoreFixture.content(100, seed: 2)])
        let faults = FaultInjectingStore(store, failures: [])
        faults.refuseGets(key: "denied", from: 0, with: S3Error(
            kind: .http, operation: "GetObject", bucket: bucket, key: "denied", status: 403, code: "AccessDenied",
            message: "denied"))
        let listing = ListingHook(store) { store.delete(bucket: StoreFixture.bucket, key: "gone") }
        let (summary, _) = try download(listing, via: faults)
        XCTAssertEqual(summary.downloaded, 1)
        XCTAssertEqual(Set(summary.failures.map(\.key)), ["denied", "gone"])
        XCTAssertTrue(summary.failures.first { $0.key == "gone" }?.reason.contains("deleted") ?? false,
                      "\(summary.failures)")
        XCTAssertNil(file("denied"))
        XCTAssertNil(file("gone"))
        XCTAssertTrue(file("ok") == StoreFixture.content(100))
    }

    /// The object is overwritten between the listing and the GETs: If-Match fails (412), HEAD
    /// names the new version, and the file holds that version, never a mix of the two.
    func testAnObjectChangedAfterListingIsFetchedAtItsNewVersionNeverMixed() throws {
        let old = StoreFixture.content(150_001, seed: 4), new = StoreFixture.content(150_001, seed: 5)
        let store = StoreFixture.store(["big.bin": old, "small": StoreFixture.content(99)])
        var newETag = ""
        let listing = ListingHook(store) {
            newETag = store.put(bucket: StoreFixture.bucket, key: "big.bin", new)
            store.put(bucket: StoreFixture.bucket, key: "small", StoreFixture.content(98, seed: 6))
        }
        let (summary, transport) = try download(listing)
        XCTAssertEqual(summary.failures.map(\.description), [])
        XCTAssertTrue(file("big.bin") == new, "the new version, whole")
        XCTAssertEqual(etagXattr("big.bin"), newETag)
        XCTAssertTrue(file("small") == StoreFixture.content(98, seed: 6))
        XCTAssertTrue(transport.startedOrders.contains { $0.key == "big.bin" && $0.etag == newETag })
    }
}
