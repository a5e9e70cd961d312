import Cache
import Foundation
import Logging
import S3
import SoakCore
import Synchronization
import XCTest
@testable import Mount

/// The tree the mount shows, from listings: implicit directories, markers, conflicts, names
/// Linux cannot show, lazy per-directory listing and refresh after the TTL.
final class NamespaceTests: XCTestCase {
    private func obj(_ key: String, _ size: Int64 = 1, id: Int64 = 0, etag: String = "e") -> CachedObject {
        CachedObject(id: id, bucketID: 1, key: key, etag: etag, size: size, mtime: 1_700_000_000, gen: 0, cachedBytes: 0,
                     verified: .unchecked)
    }

    private func ns(_ keys: [String], prefix: String = "p/") -> Namespace {
        Namespace(objects: keys.sorted().enumerated().map { obj($0.element, id: Int64($0.offset + 1)) }, prefix: prefix,
                  logger: Logger(label: "t"))
    }

    private func names(_ n: Namespace, _ ino: UInt64) throws -> [String] {
        try XCTUnwrap(n.contents(ino)).children.map(\.name)
    }

    private func path(_ n: Namespace, _ p: String) throws -> Namespace.Entry? {
        var cur = try XCTUnwrap(n.entry(Namespace.rootIno))
        for c in p.split(separator: "/") {
            guard let next = try n.lookup(parent: cur.ino, name: String(c)) else { return nil }
            cur = next
        }
        return cur
    }

    func testImplicitDirectoriesAndMarkers() throws {
        let n = ns(["p/a/b/c.txt", "p/a/d.txt", "p/top", "p/empty/", "p/", "other/x"])
        XCTAssertEqual(try names(n, Namespace.rootIno), ["a", "empty", "top"])
        XCTAssertEqual(try names(n, try XCTUnwrap(path(n, "a")).ino), ["b", "d.txt"])
        XCTAssertTrue(try XCTUnwrap(path(n, "empty")).isDirectory)
        XCTAssertEqual(try path(n, "a/b/c.txt")?.object?.key, "p/a/b/c.txt")
        XCTAssertEqual(try path(n, "a")?.links, 3, "2 + one subdirectory")
        XCTAssertNil(try path(n, "x"), "outside the prefix")
    }

    func testFileThatIsAlsoADirectoryPrefixShowsTheDirectory() throws {
        let n = ns(["p/a", "p/a/b", "p/c/", "p/c"])
        XCTAssertTrue(try XCTUnwrap(path(n, "a")).isDirectory)
        XCTAssertEqual(try path(n, "a/b")?.object?.key, "p/a/b")
        XCTAssertTrue(try XCTUnwrap(path(n, "c")).isDirectory, "a marker c/ and a file c: the directory")
        XCTAssertEqual(Set(n.hidden.map(\.key)), ["p/a", "p/c"])
        XCTAssertEqual(n.totals.bytes, 1, "hidden files are not counted")
    }

    func testNamesLinuxCannotShowAreHidden() throws {
        let long = String(repeating: "x", count: 256)
        let n = ns(["p/ok", "p/a//b", "p/./x", "p/../y", "p/\(long)", "p/d/\(long)/z", "p/fine/\(String(repeating: "y", count: 255))"])
        XCTAssertEqual(try names(n, Namespace.rootIno), ["a", "d", "fine", "ok"])
        XCTAssertEqual(try names(n, try XCTUnwrap(path(n, "a")).ino), [], "a//b: the empty name is hidden")
        XCTAssertEqual(n.hidden.count, 5)
        XCTAssertNotNil(try path(n, "fine/" + String(repeating: "y", count: 255)), "255 bytes is allowed")
    }

    func testInodesAreStableAndLookupsMiss() throws {
        let n = ns(["p/a/1", "p/a/2", "p/b"])
        XCTAssertEqual(n.entry(Namespace.rootIno)?.name, "")
        XCTAssertNil(n.entry(0))
        XCTAssertNil(n.entry(UInt64(n.totals.inodes + 1)))
        XCTAssertNil(try n.lookup(parent: Namespace.rootIno, name: "nope"))
        let a = try XCTUnwrap(path(n, "a"))
        XCTAssertEqual(n.entry(a.ino)?.name, "a")
        XCTAssertEqual(try path(n, "a/1")?.parent, a.ino)
    }

    func testKeysComparedByBytesNotGraphemes() throws {
        // Swift calls "é" and "e" + U+0301 equal; S3 keys are bytes, and they differ.
        let n = ns(["pe\u{301}/x", "p\u{e9}/y"], prefix: "p\u{e9}/")
        XCTAssertEqual(try names(n, Namespace.rootIno), ["y"])
    }

    func testNeighborsAreFilesInNameOrder() throws {
        let n = ns(["p/a", "p/b/x", "p/c", "p/d", "p/e", "p/f"])
        let a = try XCTUnwrap(path(n, "a")), c = try XCTUnwrap(path(n, "c")), f = try XCTUnwrap(path(n, "f"))
        let around = n.neighbors(c.ino, following: 2)
        XCTAssertEqual(around.previous, [a.ino], "the directory b is skipped")
        XCTAssertEqual(around.next.map(\.name), ["d", "e"])
        let d = try XCTUnwrap(path(n, "d")), e = try XCTUnwrap(path(n, "e"))
        XCTAssertEqual(n.neighbors(e.ino, following: 0, preceding: 2).previous, [d.ino, c.ino], "nearest first")
        XCTAssertEqual(n.neighbors(c.ino, following: 0, preceding: 3).previous, [a.ino], "as many as there are")
        XCTAssertEqual(n.neighbors(a.ino, following: 8).previous, [])
        XCTAssertEqual(n.neighbors(a.ino, following: 8).next.map(\.name), ["c", "d", "e", "f"])
        XCTAssertEqual(n.neighbors(f.ino, following: 8).next.count, 0)
    }

    // MARK: - Lazy listing and refresh

    /// A bucket behind the remote: the test edits `objects`; listings derive from it.
    final class FakeRemote: MountRemote, @unchecked Sendable {
        let lock = NSLock()
        var objects: [String: CachedObject] = [:]
        var listings: [String] = []
        var heads = 0
        var fail = false
        /// Listings to fail before `fail` is looked at.
        var failNext = 0
        var delay = 0.0
        func listDirectory(_ prefix: String) throws -> Namespace.Listing {
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            lock.lock(); defer { lock.unlock() }
            listings.append(prefix)
            if failNext > 0 || fail {
                failNext = max(0, failNext - 1)
                throw S3Error(kind: .transport(curlCode: 7), operation: "ListObjectsV2", bucket: "b", message: "down")
            }
            return S3MountRemote.directory(prefix, from: objects.values.sorted { $0.key < $1.key })
        }
        func current(_ o: CachedObject) throws -> CachedObject? {
            lock.lock(); defer { lock.unlock() }
            heads += 1
            return objects[o.key]
        }
        func put(_ o: CachedObject) { lock.lock(); objects[o.key] = o; lock.unlock() }
        func remove(_ key: String) { lock.lock(); objects[key] = nil; lock.unlock() }
        var listed: [String] { lock.lock(); defer { lock.unlock() }; return listings }
    }

    final class Clock: @unchecked Sendable {
        var now = 100.0
    }

    private func lazy(_ remote: FakeRemote, ttl: Double = 10, clock: Clock) -> Namespace {
        Namespace(prefix: "p/", ttl: ttl, remote: remote, clock: { clock.now }, logger: Logger(label: "t"))
    }

    func testDirectoriesAreListedLazilyOncePerTTL() throws {
        let r = FakeRemote()
        for (i, k) in ["p/a/1", "p/a/2", "p/b/c/3", "p/top"].enumerated() { r.put(obj(k, id: Int64(i + 1))) }
        let clock = Clock()
        let n = lazy(r, clock: clock)
        XCTAssertEqual(r.listed, [], "nothing listed before use")
        XCTAssertEqual(n.entry(Namespace.rootIno)?.links, 1, "subdirectories unknown yet")
        XCTAssertEqual(try names(n, Namespace.rootIno), ["a", "b", "top"])
        XCTAssertEqual(r.listed, ["p/"])
        let a = try XCTUnwrap(n.lookup(parent: Namespace.rootIno, name: "a"))
        XCTAssertEqual(r.listed, ["p/"], "looking up a directory does not list it")
        XCTAssertEqual(try n.lookup(parent: a.ino, name: "2")?.object?.key, "p/a/2")
        XCTAssertEqual(r.listed, ["p/", "p/a/"])
        _ = try n.lookup(parent: a.ino, name: "1")
        _ = try n.contents(Namespace.rootIno)
        XCTAssertEqual(r.listed, ["p/", "p/a/"], "within the TTL nothing is listed again")
        XCTAssertEqual(n.entry(Namespace.rootIno)?.links, 4, "2 + a and b")
        clock.now += 10
        _ = try n.lookup(parent: a.ino, name: "1")
        XCTAssertEqual(r.listed, ["p/", "p/a/", "p/a/"], "after the TTL the directory is listed again")
    }

    func testRefreshShowsNewChangedAndDeletedFiles() throws {
        let r = FakeRemote()
        r.put(obj("p/keep", 5, id: 1)); r.put(obj("p/gone", 5, id: 2)); r.put(obj("p/change", 5, id: 3))
        let clock = Clock()
        let n = lazy(r, clock: clock)
        let change = try XCTUnwrap(n.lookup(parent: Namespace.rootIno, name: "change"))
        let keep = try XCTUnwrap(n.lookup(parent: Namespace.rootIno, name: "keep"))
        XCTAssertEqual(n.totals.bytes, 15)
        r.remove("p/gone"); r.put(obj("p/new", 7, id: 4)); r.put(obj("p/change", 9, id: 5, etag: "f"))
        XCTAssertEqual(try names(n, Namespace.rootIno), ["change", "gone", "keep"], "within the TTL: the old listing")
        clock.now += 11
        XCTAssertEqual(try names(n, Namespace.rootIno), ["change", "keep", "new"])
        let changed = try XCTUnwrap(n.lookup(parent: Namespace.rootIno, name: "change"))
        XCTAssertNotEqual(changed.ino, change.ino, "a new version is a new inode")
        XCTAssertEqual(n.entry(change.ino)?.object?.etag, "e", "the old inode keeps the old version for open files")
        XCTAssertEqual(changed.object?.etag, "f")
        XCTAssertEqual(changed.object?.size, 9)
        XCTAssertEqual(try n.lookup(parent: Namespace.rootIno, name: "keep")?.ino, keep.ino)
        XCTAssertEqual(n.totals.bytes, 5 + 7 + 9)
        XCTAssertEqual(n.totals.files, 3)
    }

    func testAFileBecomingADirectoryGetsANewInode() throws {
        let r = FakeRemote()
        r.put(obj("p/x", id: 1))
        let clock = Clock()
        let n = lazy(r, clock: clock)
        let file = try XCTUnwrap(n.lookup(parent: Namespace.rootIno, name: "x"))
        r.put(obj("p/x/inner", id: 2))
        clock.now += 11
        let dir = try XCTUnwrap(n.lookup(parent: Namespace.rootIno, name: "x"))
        XCTAssertTrue(dir.isDirectory)
        XCTAssertNotEqual(dir.ino, file.ino)
        XCTAssertNotNil(n.entry(file.ino)?.object, "the old inode still answers for open files")
        XCTAssertEqual(n.hidden.map(\.key), ["p/x"])
    }

    func testFailedFirstListingThrowsFailedRefreshKeepsTheOldTree() throws {
        let r = FakeRemote()
        r.put(obj("p/a", id: 1))
        let clock = Clock()
        let n = lazy(r, clock: clock)
        r.fail = true
        XCTAssertThrowsError(try n.contents(Namespace.rootIno))
        r.fail = false
        XCTAssertEqual(try names(n, Namespace.rootIno), ["a"])
        r.fail = true
        clock.now += 11
        XCTAssertEqual(try names(n, Namespace.rootIno), ["a"], "stale but shown")
        let tries = r.listed.count
        _ = try n.contents(Namespace.rootIno)
        XCTAssertEqual(r.listed.count, tries, "a failed refresh waits before trying again")
        clock.now += Namespace.retryAfterFailure
        r.fail = false
        r.put(obj("p/b", id: 2))
        XCTAssertEqual(try names(n, Namespace.rootIno), ["a", "b"])
    }

    func testConcurrentUsersOfAnUnlistedDirectoryShareOneListing() throws {
        let r = FakeRemote()
        for i in 0..<50 { r.put(obj("p/d/f\(i)", id: Int64(i + 1))) }
        r.delay = 0.2
        let n = lazy(r, clock: Clock())
        let d = try XCTUnwrap(n.lookup(parent: Namespace.rootIno, name: "d"))
        let found = NSLock()
        nonisolated(unsafe) var hits = 0
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            if (try? n.lookup(parent: d.ino, name: "f\(i)")) != nil { found.lock(); hits += 1; found.unlock() }
        }
        XCTAssertEqual(hits, 8)
        XCTAssertEqual(r.listed, ["p/", "p/d/"])
    }

    func testWaitersOfAFailedFirstListingListAgainThemselves() throws {
        let r = FakeRemote()
        for i in 0..<4 { r.put(obj("p/d/f\(i)", id: Int64(i + 1))) }
        let n = lazy(r, clock: Clock())
        let d = try XCTUnwrap(n.lookup(parent: Namespace.rootIno, name: "d"))
        r.delay = 0.2
        r.failNext = 1
        let found = Mutex<[Bool]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let ok = (try? n.lookup(parent: d.ino, name: "f\(i)")) != nil
            found.withLock { $0.append(ok) }
        }
        XCTAssertEqual(found.withLock { $0.filter { !$0 }.count }, 1, "only the caller whose listing failed sees it fail")
        XCTAssertEqual(r.listed.filter { $0 == "p/d/" }.count, 2, "the failed listing, then one for everyone else")
    }

    func testRevalidationAfterTheTTLAndVersionTracking() throws {
        let r = FakeRemote()
        r.put(obj("p/f", 3, id: 1))
        let clock = Clock()
        let n = lazy(r, clock: clock)
        let f = try XCTUnwrap(n.lookup(parent: Namespace.rootIno, name: "f"))
        XCTAssertFalse(n.needsRevalidation(f.ino), "just listed")
        clock.now += 10
        XCTAssertTrue(n.needsRevalidation(f.ino))
        XCTAssertEqual(n.update(f.ino, object: obj("p/f", 3, id: 1))?.ino, f.ino, "unchanged: same inode")
        XCTAssertFalse(n.needsRevalidation(f.ino), "confirmed")
        clock.now += 10
        let g = obj("p/f", 4, id: 2, etag: "g")
        r.put(g)
        let updated = try XCTUnwrap(n.update(f.ino, object: g))
        XCTAssertNotEqual(updated.ino, f.ino, "changed: a new inode")
        XCTAssertEqual(updated.object?.size, 4)
        XCTAssertEqual(try n.lookup(parent: Namespace.rootIno, name: "f")?.ino, updated.ino)
        XCTAssertEqual(try names(n, Namespace.rootIno), ["f"])
        XCTAssertEqual(n.totals.bytes, 4)
        n.markStale(updated.ino)
        XCTAssertTrue(n.needsRevalidation(updated.ino), "after a 412 the next open asks again")
        r.remove("p/f")
        XCTAssertNil(n.update(updated.ino, object: nil))
        XCTAssertNil(try n.lookup(parent: Namespace.rootIno, name: "f"), "gone remotely: the name goes")
        XCTAssertEqual(n.totals.files, 0)
    }

    func testFilterHidesFilesButNotDirectories() throws {
        let r = FakeRemote()
        r.put(obj("p/a.csv", id: 1)); r.put(obj("p/b.tmp", id: 2)); r.put(obj("p/d/c.tmp", id: 3))
        let n = Namespace(prefix: "p/", ttl: 10, filter: KeyFilter([.exclude("*.tmp")]),
                          remote: r, clock: { 0 }, logger: Logger(label: "t"))
        XCTAssertEqual(try names(n, Namespace.rootIno), ["a.csv", "d"])
        XCTAssertEqual(try names(n, try XCTUnwrap(n.lookup(parent: Namespace.rootIno, name: "d")).ino), [])
    }
}
