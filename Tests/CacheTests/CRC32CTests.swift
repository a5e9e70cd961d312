import SoakCore
import XCTest

final class CRC32CTests: XCTestCase {
    func testKnownVector() {
        // RFC 3720 (iSCSI) check value for "123456789".
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([]), 0)
    }

    func testHardwareMatchesSoftwareAndStreaming() {
        var rng = SeededRandom(seed: 7)
        for n in [1, 7, 8, 9, 63, 64, 1000, 65_537] {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let whole = CRC32C.checksum(bytes)
            XCTAssertEqual(whole, CRC32C.softwareChecksum(bytes), "n=\(n)")
            var c = CRC32C()
            let cut = n / 3
            c.update(Array(bytes[..<cut]))
            c.update(Array(bytes[cut...]))
            XCTAssertEqual(c.value, whole, "streamed n=\(n)")
        }
    }
}
