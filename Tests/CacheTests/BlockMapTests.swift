import XCTest
@testable import Cache

/// The packed block slots of format 2: set, clear, trailing trim, chunk arithmetic.
final class BlockMapTests: XCTestCase {
    func testSlotsSetClearAndTrim() {
        var m = BlockMap()
        XCTAssertTrue(m.isEmpty)
        XCTAssertTrue(m.set(slot: 3, crc: 0xDEAD_BEEF))
        XCTAssertFalse(m.set(slot: 3, crc: 1), "a present slot is not overwritten")
        XCTAssertTrue(m.set(slot: 0, crc: 0), "CRC 0 is a value like any other")
        XCTAssertEqual(m.blob.count, 4 * BlockMap.slotBytes)
        XCTAssertEqual(m.present.map(\.slot), [0, 3])
        XCTAssertEqual(m.value(slot: 3), 0xDEAD_BEEF)
        XCTAssertEqual(m.value(slot: 0), 0)
        XCTAssertNil(m.value(slot: 1))
        XCTAssertNil(m.value(slot: 40))
        XCTAssertEqual(BlockMap(m.blob).present.map(\.crc), [0, 0xDEAD_BEEF], "round trip through the blob")
        XCTAssertTrue(m.clear(slot: 3))
        XCTAssertFalse(m.clear(slot: 3))
        XCTAssertEqual(m.blob.count, BlockMap.slotBytes, "trailing empty slots are trimmed")
        XCTAssertTrue(m.clear(slot: 0))
        XCTAssertTrue(m.isEmpty)
        XCTAssertEqual(m.blob, [])
    }

    func testTornBlobKeepsWholeSlotsOnly() {
        var m = BlockMap()
        _ = m.set(slot: 0, crc: 7)
        _ = m.set(slot: 1, crc: 8)
        let torn = Array(m.blob.dropLast(2))
        XCTAssertEqual(BlockMap(torn).present.map(\.slot), [0])
    }

    func testLocate() {
        let n = CacheFormat.chunkBlocks
        XCTAssertEqual(BlockMap.locate(0).chunk, 0)
        XCTAssertEqual(BlockMap.locate(n - 1).slot, n - 1)
        XCTAssertEqual(BlockMap.locate(n).chunk, 1)
        XCTAssertEqual(BlockMap.locate(n).slot, 0)
        XCTAssertLessThanOrEqual(n * BlockMap.slotBytes, 230, "a full chunk fits a 1 KiB page's local payload")
    }
}
