import Crypto
import SoakCore
import XCTest

/// The many-lane MD5 against RFC 1321's vectors and swift-crypto's MD5, every build this CPU runs.
final class MD5LanesTests: XCTestCase {
    private func reference(_ bytes: [UInt8]) -> String {
        Insecure.MD5.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    func testRFC1321VectorsInEveryLane() {
        let vectors: [(String, String)] = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            (String(repeating: "1234567890", count: 8), "57edf4a22be3c955ac49da2e2107b67a"),
        ]
        for build in MD5Lanes.supportedBuilds {
            let m = MD5Lanes(build: build)
            let inputs = (0..<MD5Lanes.width).map { Array(vectors[$0 % vectors.count].0.utf8) }
            withBuffers(inputs) { m.update($0) }
            for l in 0..<MD5Lanes.width {
                XCTAssertEqual(lowercaseHex(m.digest(lane: l)), vectors[l % vectors.count].1, "lane \(l) build \(build)")
            }
        }
    }

    /// Random lengths around block and padding edges, fed in random pieces (empty ones too),
    /// lanes ending at different times; each lane must equal the one-stream MD5.
    func testLanesMatchOneStreamMD5() {
        var rng = SeededRandom(seed: 11)
        for round in 0..<40 {
            let builds = MD5Lanes.supportedBuilds
            let build = builds[round % builds.count]
            let m = MD5Lanes(build: build)
            let lengths = (0..<MD5Lanes.width).map { _ -> Int in
                let edges = [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 4096]
                return rng.next() % 3 == 0 ? edges[Int(rng.next() % UInt64(edges.count))] : Int(rng.next() % 70_000)
            }
            let data = lengths.map { n in (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            var offsets = [Int](repeating: 0, count: MD5Lanes.width)
            while zip(offsets, lengths).contains(where: { $0 < $1 }) {
                let pieces = (0..<MD5Lanes.width).map { l -> [UInt8] in
                    let n = min(lengths[l] - offsets[l], Int(rng.next() % 9000))
                    defer { offsets[l] += n }
                    return Array(data[l][offsets[l]..<(offsets[l] + n)])
                }
                withBuffers(pieces) { m.update($0) }
            }
            for l in 0..<MD5Lanes.width {
                XCTAssertEqual(lowercaseHex(m.digest(lane: l)), reference(data[l]),
                               "round \(round) lane \(l) length \(lengths[l]) build \(build)")
            }
        }
    }

    func testFewerLanesThanWidthAndReset() {
        let m = MD5Lanes()
        let a = Array(repeating: UInt8(7), count: 1000), b = Array(repeating: UInt8(9), count: 70)
        withBuffers([a, b]) { m.update($0) }
        XCTAssertEqual(lowercaseHex(m.digest(lane: 1)), reference(b))
        XCTAssertEqual(lowercaseHex(m.digest(lane: 0)), reference(a))
        m.reset(lane: 0)
        withBuffers([b]) { m.update($0) }
        XCTAssertEqual(lowercaseHex(m.digest(lane: 0)), reference(b))
        XCTAssertEqual(lowercaseHex(m.digest(lane: 5)), reference([]), "an untouched lane is the empty stream")
    }

    /// Streams in some lanes only (one half, the other, a lane of each): a build that hashes
    /// the halves apart, or all sixteen at once, must leave idle lanes alone either way.
    func testPartlyBusyLanesInEveryBuild() {
        let data = (0..<MD5Lanes.width).map { l in (0..<(3000 + 977 * l)).map { UInt8(truncatingIfNeeded: $0 * 31 + l) } }
        for build in MD5Lanes.supportedBuilds {
            for busy in [Set(0..<8), Set(8..<16), Set([3, 12]), Set([15])] {
                let m = MD5Lanes(build: build)
                withBuffers((0..<MD5Lanes.width).map { busy.contains($0) ? data[$0] : [] }) { m.update($0) }
                for l in 0..<MD5Lanes.width {
                    XCTAssertEqual(lowercaseHex(m.digest(lane: l)), reference(busy.contains(l) ? data[l] : []),
                                   "build \(build) busy \(busy.sorted()) lane \(l)")
                }
            }
        }
    }

    private func withBuffers(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> Void) {
        let copies = arrays.map { a -> UnsafeMutableRawBufferPointer in
            let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(a.count, 1), alignment: 1)
            a.withUnsafeBytes { if $0.count > 0 { p.copyMemory(from: $0) } }
            return p
        }
        defer { copies.forEach { $0.deallocate() } }
        body(zip(copies, arrays).map { UnsafeRawBufferPointer(start: $0.0.baseAddress, count: $0.1.count) })
    }
}
