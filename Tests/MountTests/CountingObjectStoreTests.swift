/// The coordinator's own S3 requests counted by operation and outcome, over the in-memory and
/// fault-injecting stores: results pass through untouched, failures are counted and rethrown.
import Foundation
import S3
import SoakTestSupport
import XCTest
@testable import Mount

final class CountingObjectStoreTests: XCTestCase {
    private func s3(_ status: Int, kind: S3Error.Kind = .http) -> S3Error {
        S3Error(kind: kind, operation: "x", bucket: "b", key: "k", status: status, message: "m")
    }

    private struct Broken: Error {}

    /// Every call fails with an error that is not an `S3Error`.
    private struct BrokenStore: ObjectStore {
        func listPage(bucket: String, prefix: String, delimiter: String?, continuationToken: String?,
                      maxKeys: Int) throws -> ListPage { throw Broken() }
        func head(bucket: String, key: String) throws -> ObjectInfo { throw Broken() }
        func get(bucket: String, key: String, range: ClosedRange<Int64>?, ifMatch: String?,
                 sink: (UnsafeRawBufferPointer) throws -> Void) throws -> GetResult { throw Broken() }
    }

    func testResultsPassThroughAndEveryOutcomeIsCounted() throws {
        let memory = MemoryObjectStore()
        memory.createBucket("b")
        let etag = memory.put(bucket: "b", key: "p/a", Array("hello".utf8))
        _ = memory.put(bucket: "b", key: "p/b", [1])
        let faults = FaultInjectingStore(memory, failures: [s3(503), s3(0, kind: .transport(curlCode: 7))])
        let counts = RequestCounts()
        let store = CountingObjectStore(base: faults, counts: counts)

        XCTAssertThrowsError(try store.head(bucket: "b", key: "p/a")) { XCTAssertEqual(($0 as? S3Error)?.status, 503) }
        XCTAssertThrowsError(try store.listPage(bucket: "b", prefix: "p/", delimiter: "/", continuationToken: nil, maxKeys: 10))
        let page = try store.listPage(bucket: "b", prefix: "p/", delimiter: "/", continuationToken: nil, maxKeys: 10)
        XCTAssertEqual(page.objects.map(\.key), ["p/a", "p/b"])
        XCTAssertEqual(try store.head(bucket: "b", key: "p/a").etag, etag)
        XCTAssertThrowsError(try store.head(bucket: "b", key: "p/none")) { XCTAssertEqual(($0 as? S3Error)?.status, 404) }
        var body: [UInt8] = []
        let r = try store.get(bucket: "b", key: "p/a", range: 1...3, ifMatch: etag) { body += $0 }
        XCTAssertEqual(body, Array("ell".utf8))
        XCTAssertEqual(r.bytes, 3)
        XCTAssertThrowsError(try store.get(bucket: "b", key: "p/a", range: nil, ifMatch: "\"other\"") { _ in })

        XCTAssertEqual(counts.snapshot, [
            "HeadObject": ["503": 1, "ok": 1, "404": 1],
            "ListObjectsV2": ["transport_error": 1, "ok": 1],
            "GetObject": ["ok": 1, "412": 1],
        ])
    }

    func testAnErrorThatIsNotS3IsCountedAsError() {
        let counts = RequestCounts()
        let store = CountingObjectStore(base: BrokenStore(), counts: counts)
        XCTAssertThrowsError(try store.get(bucket: "b", key: "k", range: nil, ifMatch: nil) { _ in }) { XCTAssertTrue($0 is Broken) }
        XCTAssertThrowsError(try store.get(bucket: "b", key: "k", range: nil, ifMatch: nil) { _ in })
        XCTAssertEqual(counts.snapshot, ["GetObject": ["error": 2]])
    }

    func testCountsFromManyThreadsAddUp() {
        let counts = RequestCounts()
        let memory = MemoryObjectStore()
        memory.createBucket("b")
        _ = memory.put(bucket: "b", key: "k", [1])
        let store = CountingObjectStore(base: memory, counts: counts)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for _ in 0..<250 { _ = try? store.head(bucket: "b", key: i % 2 == 0 ? "k" : "missing") }
        }
        XCTAssertEqual(counts.snapshot, ["HeadObject": ["ok": 1000, "404": 1000]])
    }
}
