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
        // Around the three-stream runs of 3 × 512 bytes, and many of them.
        for n in [1, 7, 8, 9, 63, 64, 1000, 1535, 1536, 1537, 3072, 3077, 4608, 65_537, 1 << 20] {
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

    func testRandomSplitsMatchTheBitwiseCRC() {
        var rng = SeededRandom(seed: 11)
        let bytes = (0..<40_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for _ in 0..<200 {
            let start = Int.random(in: 0..<1000, using: &rng)
            let end = Int.random(in: start...bytes.count, using: &rng)
            let slice = Array(bytes[start..<end])
            var c = CRC32C()
            var at = 0
            while at < slice.count {
                let n = min(slice.count - at, Int.random(in: 1...5000, using: &rng))
                c.update(Array(slice[at..<(at + n)]))
                at += n
            }
            XCTAssertEqual(c.value, CRC32C.softwareChecksum(slice), "bytes \(start)..<\(end)")
        }
    }
}
