import Cache
import Logging
import XCTest
@testable import Mount

/// The tree the mount shows, from a listing: implicit directories, markers, conflicts and names
/// Linux cannot show.
final class NamespaceTests: XCTestCase {
    private func obj(_ key: String, _ size: Int64 = 1, id: Int64 = 0) -> CachedObject {
        CachedObject(id: id, bucketID: 1, key: key, etag: "e", size: size, mtime: 1_700_000_000, gen: 0, cachedBytes: 0,
                     verified: .unchecked)
    }

    private func ns(_ keys: [String], prefix: String = "p/") -> Namespace {
        Namespace(objects: keys.sorted().enumerated().map { obj($0.element, id: Int64($0.offset + 1)) }, prefix: prefix,
                  now: 0, logger: Logger(label: "t"))
    }

    private func names(_ n: Namespace, _ ino: UInt64) -> [String] { n.node(ino)!.ordered.map { n.node($0)!.name } }

    private func path(_ n: Namespace, _ p: String) -> Namespace.Node? {
        var cur = n.node(Namespace.rootIno)!
        for c in p.split(separator: "/") {
            guard let next = n.lookup(parent: cur.ino, name: String(c)) else { return nil }
            cur = next
        }
        return cur
    }

    func testImplicitDirectoriesAndMarkers() {
        let n = ns(["p/a/b/c.txt", "p/a/d.txt", "p/top", "p/empty/", "p/", "other/x"])
        XCTAssertEqual(names(n, Namespace.rootIno), ["a", "empty", "top"])
        XCTAssertEqual(names(n, path(n, "a")!.ino), ["b", "d.txt"])
        XCTAssertTrue(path(n, "empty")!.isDirectory)
        XCTAssertEqual(path(n, "a/b/c.txt")?.object?.key, "p/a/b/c.txt")
        XCTAssertEqual(path(n, "a")!.subdirectories, 1)
        XCTAssertNil(path(n, "x"), "outside the prefix")
    }

    func testFileThatIsAlsoADirectoryPrefixShowsTheDirectory() {
        let n = ns(["p/a", "p/a/b", "p/c/", "p/c"])
        XCTAssertTrue(path(n, "a")!.isDirectory)
        XCTAssertEqual(path(n, "a/b")?.object?.key, "p/a/b")
        XCTAssertTrue(path(n, "c")!.isDirectory, "a marker c/ and a file c: the directory")
        XCTAssertEqual(Set(n.hidden.map(\.key)), ["p/a", "p/c"])
        XCTAssertEqual(n.totalBytes, 1, "hidden files are not counted")
    }

    func testNamesLinuxCannotShowAreHidden() {
        let long = String(repeating: "x", count: 256)
        let n = ns(["p/ok", "p/a//b", "p/./x", "p/../y", "p/\(long)", "p/d/\(long)/z", "p/fine/\(String(repeating: "y", count: 255))"])
        XCTAssertEqual(names(n, Namespace.rootIno), ["fine", "ok"])
        XCTAssertEqual(n.hidden.count, 5)
        XCTAssertNotNil(path(n, "fine/" + String(repeating: "y", count: 255)), "255 bytes is allowed")
    }

    func testInodesAreStableAndLookupsMiss() {
        let n = ns(["p/a/1", "p/a/2", "p/b"])
        XCTAssertEqual(n.node(Namespace.rootIno)?.name, "")
        XCTAssertNil(n.node(0))
        XCTAssertNil(n.node(UInt64(n.count + 1)))
        XCTAssertNil(n.lookup(parent: Namespace.rootIno, name: "nope"))
        let a = path(n, "a")!
        XCTAssertEqual(n.node(a.ino)?.name, "a")
        XCTAssertEqual(n.node(path(n, "a/1")!.parent)?.ino, a.ino)
    }
}
