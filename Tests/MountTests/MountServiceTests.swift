import Foundation
import Logging
import S3
import SoakTestSupport
import XCTest
@testable import Mount

/// `MountService`'s mountpoint checks, the stop-signal mask, and the coordinator's request
/// counting. (`start` and the session it returns: MountSessionTests; `run`, which mounts with
/// libfuse: MountIntegrationTests.)
final class MountServiceTests: XCTestCase {
    private var dir = ""
    private let logger = Logger(label: "test")

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "soak-mountsvc-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private func refusal(_ path: String) -> String? {
        do { try MountService.prepareMountpoint(path, logger: logger); return nil } catch { return "\(error)" }
    }

    func testMountpointMustBeAnExistingEmptyDirectory() throws {
        XCTAssertNil(refusal(dir), "an empty directory is fine")
        XCTAssertEqual(refusal(dir + "/missing"), "mountpoint \(dir)/missing does not exist")
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/file", contents: Data([1])))
        XCTAssertEqual(refusal(dir + "/file"), "mountpoint \(dir)/file is not a directory")
        XCTAssertEqual(refusal(dir), "mountpoint \(dir) is not empty")
        // A mount point of another file system (a bind-mounted volume) is mounted over; /proc
        // is then refused only for its entries.
        XCTAssertEqual(refusal("/proc"), "mountpoint /proc is not empty")
    }

    func testIsMountpointReadsMountinfo() {
        XCTAssertTrue(MountService.isMountpoint("/proc"))
        XCTAssertFalse(MountService.isMountpoint(dir))
    }

    func testStopSignalsAreBlockedAndUnblockedForTheThread() {
        func blocked() -> Bool {
            var set = sigset_t()
            pthread_sigmask(SIG_BLOCK, nil, &set)
            return sigismember(&set, SIGTERM) == 1
        }
        let before = blocked()
        MountService.setStopSignals(blocked: true)
        XCTAssertTrue(blocked())
        MountService.setStopSignals(blocked: false)
        XCTAssertFalse(blocked())
        MountService.setStopSignals(blocked: before)
    }

    func testCoordinatorRequestsAreCountedByOperationAndOutcome() throws {
        let mem = MemoryObjectStore()
        mem.createBucket("b")
        mem.put(bucket: "b", key: "k", [1, 2, 3])
        let denied = S3Error(kind: .http, operation: "HeadObject", bucket: "b", status: 403, message: "denied")
        let counts = RequestCounts()
        let store = CountingObjectStore(base: FaultInjectingStore(mem, failures: [denied]), counts: counts)
        XCTAssertThrowsError(try store.head(bucket: "b", key: "k"))
        XCTAssertEqual(try store.head(bucket: "b", key: "k").size, 3)
        _ = try store.listPage(bucket: "b", prefix: "", delimiter: "/", continuationToken: nil, maxKeys: 10)
        _ = try store.get(bucket: "b", key: "k", range: nil, ifMatch: nil) { _ in }
        XCTAssertThrowsError(try store.get(bucket: "b", key: "nope", range: nil, ifMatch: nil) { _ in })
        XCTAssertEqual(counts.snapshot, ["HeadObject": ["403": 1, "ok": 1], "ListObjectsV2": ["ok": 1],
                                         "GetObject": ["ok": 1, "404": 1]])
    }
}
