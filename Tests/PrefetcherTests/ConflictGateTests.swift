import XCTest
@testable import Prefetcher

final class ConflictGateTests: XCTestCase {
    /// Feeds a sorted listing; returns (started in order, conflicts).
    private func run(_ keys: [String]) -> ([String], [String]) {
        var g = ConflictGate<String>()
        var started: [String] = [], conflicts: [String] = []
        for k in keys {
            let r = g.offer(path: k, item: k.hasSuffix("/") ? nil : k)
            started += r.ready; conflicts += r.conflicts
        }
        started += g.finish()
        return (started, conflicts)
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
        XCTAssertEqual(g.finish(), ["a0"])
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
}
