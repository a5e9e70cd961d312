import Cache
import Engine
import Foundation
import S3
import SoakTestSupport
import SoakCore
import XCTest
@testable import Mount

/// Reads that miss, through the production `FetchEngine` and a `StoreTransport` over a
/// `FaultInjectingStore`: what the scheduler retries the reader never sees; what it cannot
/// retry reaches the reader as its errno; a changed object is never mixed with the old one.
final class MountFilesystemFaultTests: XCTestCase {
    private var fixtures: [MountFixture] = []
    private let key = "p/big.bin"
    private let size = 2 * Int(CacheFormat.blockSize) + 1000

    override func tearDown() { for f in fixtures { f.shutdown() }; fixtures = [] }

    /// A fixture whose fetches go through `faults(bucket)`.
    private func fixture(_ faults: @escaping (ObjectStore) -> FaultInjectingStore) throws
        -> (MountFixture, FaultInjectingStore) {
        var wrapped: FaultInjectingStore?
        let f = try MountFixture(objects: [key: content(size, seed: 4)], fetchVia: { store in
            let w = faults(store)
            wrapped = w
            return w
        })
        fixtures.append(f)
        return (f, try XCTUnwrap(wrapped))
    }

    private func s3(_ status: Int, _ code: String) -> S3Error {
        S3Error(kind: .http, operation: "GetObject", bucket: MountFixture.bucket, key: key, status: status, code: code,
                message: code)
    }

    func testThrottlingAndServerErrorsAreRetriedAndTheReadSucceeds() throws {
        let (f, faults) = try fixture { FaultInjectingStore($0, failures: [self.s3(503, "SlowDown"), self.s3(503, "SlowDown"),
                                                                           self.s3(500, "InternalError")]) }
        let fh = try f.openHandle(try f.ino("big.bin"))
        let bs = Int(CacheFormat.blockSize)
        XCTAssertEqual(try f.read(fh, offset: Int64(bs - 5), size: 10).get(), Array(content(size, seed: 4)[(bs - 5)..<(bs + 5)]))
        XCTAssertEqual(faults.pending, 0, "every scripted failure was met")
        let stats = f.engine.snapshot()
        XCTAssertEqual(stats.retries, 3)
        XCTAssertEqual(stats.throttled, 2)
    }

    func testABodyCutMidwayResumesAndTheReadSucceeds() throws {
        let bs = Int(CacheFormat.blockSize)
        let (f, _) = try fixture { store in
            let faults = FaultInjectingStore(store, failures: [])
            faults.cutNextGet(after: Int64(bs + 100), with: S3Error(kind: .transport(curlCode: 56), operation: "GetObject",
                                                                    bucket: MountFixture.bucket, key: self.key,
                                                                    message: "connection reset"))
            return faults
        }
        let fh = try f.openHandle(try f.ino("big.bin"))
        XCTAssertEqual(try f.read(fh, offset: 0, size: size).get(), content(size, seed: 4))
        XCTAssertEqual(f.engine.snapshot().retries, 1)
    }

    func testAccessDeniedIsEACCESAndTheReadWorksOnceAllowed() throws {
        let (f, faults) = try fixture { store in
            let faults = FaultInjectingStore(store, failures: [])
            faults.refuseGets(key: self.key, from: 0, with: self.s3(403, "AccessDenied"))
            return faults
        }
        let fh = try f.openHandle(try f.ino("big.bin"))
        XCTAssertEqual(f.read(fh, offset: 0, size: 100).errno, EACCES)
        XCTAssertEqual(f.engine.snapshot().retries, 0, "a refusal is not retried")
        faults.allowGets()
        XCTAssertEqual(try f.read(fh, offset: 0, size: 100).get(), Array(content(size, seed: 4)[0..<100]))
    }

    func testAnObjectChangedAfterOpenIsStaleAndTheNextOpenShowsTheNewBytes() throws {
        let (f, _) = try fixture { FaultInjectingStore($0, failures: []) }
        let old = try f.ino("big.bin")
        let fh = try f.openHandle(old)
        let newBytes = content(5000, seed: 8)
        f.store.put(bucket: MountFixture.bucket, key: key, newBytes)
        XCTAssertEqual(f.read(fh, offset: 0, size: 100).errno, ESTALE, "If-Match fails: never the new bytes")
        XCTAssertEqual(f.open(old).errno, ESTALE, "the open revalidates and finds a new version")
        let new = try f.ino("big.bin")
        XCTAssertNotEqual(new, old)
        let fh2 = try f.openHandle(new)
        XCTAssertEqual(try f.read(fh2, offset: 0, size: 10_000).get(), newBytes)
        XCTAssertEqual(f.read(fh, offset: 0, size: 100).errno, ESTALE, "the old handle still never sees them")
    }
}
