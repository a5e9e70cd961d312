@testable import Cache
import Foundation
import S3
import SoakCore
import Synchronization
import XCTest

/// Reading blocks that landed (written by this process's worker) but are not yet recorded,
/// while the commit that records them runs.
final class LandedReadTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws { dir = NSTemporaryDirectory() + "soak-landed-\(UUID().uuidString.prefix(8))" }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A block landed before the read began is served even when its commit (recorded in the
    /// index, then forgotten as landed) runs between the read's two lookups. The mount's miss
    /// path answered EIO here: its fill was answered when the block landed, and the pread after
    /// found it in neither place.
    func testABlockThatLandedIsReadWhileItsCommitRuns() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let data = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let o = try XCTUnwrap(c.index.recordListing(bucketID: b, objects: [
            ObjectInfo(key: "k", size: Int64(data.count), etag: "e1")], stamp: 1).objects.first)
        DiskCacheTests.writeFile(c.dataPath(o), data)
        let block = CacheIndex.LandedBlock(objectID: o.id, gen: o.gen, index: 0, crc: CRC32C.checksum(data),
                                           bytes: Int64(data.count))
        c.noteLanded([block])
        let committed = Flag()
        c.runBetweenReadLookups { [c] in
            guard committed.ran.withLock({ ran in defer { ran = true }; return !ran }) else { return }
            XCTAssertEqual(try? c.commit([block]).count, 1)
        }
        XCTAssertTrue(try c.read(o, offset: 0, count: data.count) == data, "served from the landed block or the index")
        XCTAssertTrue(committed.ran.withLock { $0 }, "the commit ran between the lookups")
        XCTAssertTrue(c.landedBlocks(o).isEmpty, "and forgot the block as landed")
    }
}

/// Whether a hook ran, shared with it.
private final class Flag: Sendable { let ran = Mutex(false) }
