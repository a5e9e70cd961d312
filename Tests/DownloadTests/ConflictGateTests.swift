@testable import Download
import XCTest
@testable import Engine

final class ConflictGateTests: XCTestCase {
    /// Feeds a sorted listing; returns (started in order, conflicts).
    private func run(_ keys: [String], sorted: Bool = true) -> ([String], [String]) {
        var g = ConflictGate<String>(sorted: sorted)
        var started: [String] = [], conflicts: [String] = []
        for k in keys {
            let r = g.offer(path: k, item: k.hasSuffix("/") ? nil : k)
            started += r.ready; conflicts += r.conflicts
        }
        let end = g.finish()
        return (started + end.ready, conflicts + end.conflicts)
    }

    func testFileThatIsAlsoADirectoryYieldsToTheDirectory() {
        let (s, c) = run(["a", "a!x", "a.bak", "a/b", "a/c", "b"])
        XCTAssertEqual(c, ["a"])
        XCTAssertEqual(Set(s), ["a!x", "a.bak", "a/b", "a/c", "b"])
    }

    func testDirectoryMarkerAlsoSettlesAConflict() {
        let (s, c) = run(["a", "a/", "a/x"])
        XCTAssertEqual(c, ["a"])
        XCTAssertEqual(s, ["a/x"])
    }

    func testKeysAreReleasedAsSoonAsTheListingPassesTheirDirectoryRange() {
        var g = ConflictGate<String>()
        XCTAssertEqual(g.offer(path: "a", item: "a").ready, [])
        XCTAssertEqual(g.offer(path: "a-1", item: "a-1").ready, [])       // '-' < '/': "a" still open
        let r = g.offer(path: "a0", item: "a0")                             // '0' > '/': "a" and "a-1" settled
        XCTAssertEqual(Set(r.ready), ["a", "a-1"])
        XCTAssertEqual(r.conflicts, [])
        XCTAssertEqual(g.finish().ready, ["a0"])
    }

    func testNestedConflictsAndUnicode() {
        let (s, c) = run(["d", "d/e", "d/e/f", "é", "é/x"])
        XCTAssertEqual(Set(c), ["d", "d/e", "é"])
        XCTAssertEqual(Set(s), ["d/e/f", "é/x"])
    }

    func testEveryKeyEndsUpExactlyOnce() {
        var keys: [String] = []
        for a in ["a", "b", "ab", "a b", "a.b"] { keys.append(a); for b in ["x", "y/z"] { keys.append(a + "/" + b) } }
        keys.sort { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let (s, c) = run(keys)
        XCTAssertEqual(s.count + c.count, keys.count)
        XCTAssertEqual(Set(s).intersection(c), [])
        XCTAssertEqual(Set(c), ["a", "b", "ab", "a b", "a.b"])
    }

    // MARK: - Unsorted listings (directory buckets)

    private static let conflictKeys: [String] = {
        var keys: [String] = []
        for a in ["a", "b", "ab", "a b", "a.b", "é"] {
            keys.append(a)
            for b in ["x", "y/z", "y"] { keys.append(a + "/" + b) }
        }
        keys += ["a-1", "a0", "c/", "c", "d", "lone"]
        return keys
    }()
    /// The conflicts the rule gives: files that are also a directory of another key or marker.
    private static let expectedConflicts: Set<String> = ["a", "b", "ab", "a b", "a.b", "é", "a/y", "b/y", "ab/y",
                                                         "a b/y", "a.b/y", "é/y", "c"]

    func testShuffledListingsGiveTheSortedAnswer() {
        var rng = SplitMix(seed: 19)
        let files = Self.conflictKeys.filter { !$0.hasSuffix("/") }
        for round in 0..<200 {
            let keys = Self.conflictKeys.shuffled(using: &rng)
            let (s, c) = run(keys, sorted: false)
            XCTAssertEqual(Set(c), Self.expectedConflicts, "round \(round): \(keys)")
            XCTAssertEqual(Set(s), Set(files).subtracting(Self.expectedConflicts), "round \(round)")
            XCTAssertEqual(s.count + c.count, files.count)
        }
        let (s, c) = run(Self.sortedKeys)
        XCTAssertEqual(Set(c), Self.expectedConflicts)
        XCTAssertEqual(s.count + c.count, files.count)
    }

    private static let sortedKeys = conflictKeys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }

    func testASortedListingThatGoesBackwardsSwitchesToTheFullCheck() {
        var g = ConflictGate<String>()
        XCTAssertEqual(g.offer(path: "m", item: "m").ready, [])
        XCTAssertFalse(g.switchedToUnsorted)
        // "a" sorts before "m": the promise is broken; "m" stays held until the end now.
        XCTAssertEqual(g.offer(path: "a", item: "a").ready, [])
        XCTAssertTrue(g.switchedToUnsorted)
        XCTAssertEqual(g.offer(path: "z", item: "z").ready, [])
        XCTAssertEqual(g.offer(path: "m/x", item: "m/x").ready, [])
        let end = g.finish()
        XCTAssertEqual(end.conflicts, ["m"])
        XCTAssertEqual(Set(end.ready), ["a", "z", "m/x"])
    }

    func testDirectoryBucketsAreKnownByName() {
        XCTAssertFalse(ConflictGate<Int>.listsSorted(bucket: "data--usw2-az1--x-s3"))
        XCTAssertTrue(ConflictGate<Int>.listsSorted(bucket: "data"))
    }
}

/// A seeded generator, so a failing shuffle can be replayed.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
