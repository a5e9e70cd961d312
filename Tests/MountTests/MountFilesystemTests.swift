import Cache
import Engine
import Foundation
import Logging
import S3
import SoakTestSupport
import SoakCore
import XCTest
@testable import Mount

/// MountFilesystem's answers without libfuse: names, directories, opens, reads of cached
/// content (hits) and of content that must be fetched (misses), and every error's errno.
final class MountFilesystemTests: XCTestCase {
    private var fixtures: [MountFixture] = []
    private let big = 2 * Int(CacheFormat.blockSize) + 1000

    override func tearDown() { for f in fixtures { f.shutdown() }; fixtures = [] }

    private func fixture(lazy: Bool = false, listingStore: ObjectStore? = nil, readAheadBlocks: Int = 0) throws -> MountFixture {
        let f = try MountFixture(objects: ["p/a.txt": content(3000, seed: 1), "p/d/big.bin": content(big, seed: 2),
                                           "p/d/e/f": content(10, seed: 3), "other/x": [1]],
                                 lazy: lazy, listingStore: listingStore, readAheadBlocks: readAheadBlocks)
        fixtures.append(f)
        return f
    }

    func testLookupGetattrAndStatfs() throws {
        let f = try fixture()
        guard case .success(.entry(let a, let ttl)) = f.fs.lookup(parent: Namespace.rootIno, name: "a.txt") else {
            return XCTFail("a.txt not found")
        }
        XCTAssertEqual(a.size, 3000)
        XCTAssertFalse(a.isDirectory)
        XCTAssertEqual(ttl, 60)
        guard case .success(.noEntry(let negative)) = f.fs.lookup(parent: Namespace.rootIno, name: "missing") else {
            return XCTFail("a missing name is a negative entry")
        }
        XCTAssertEqual(negative, 60, "the kernel caches the absence for the TTL")
        guard case .success(.attr(let d, _)) = f.fs.getattr(ino: try f.ino("d")) else { return XCTFail("getattr d") }
        XCTAssertTrue(d.isDirectory)
        XCTAssertEqual(d.links, 3, "2 + one subdirectory")
        XCTAssertEqual(f.fs.getattr(ino: 9999).errno, ENOENT)
        guard case .success(.statfs(let blocks, let files)) = f.fs.statfs() else { return XCTFail("statfs") }
        XCTAssertEqual(blocks, 3, "3000 + 2 MiB + 1010 bytes round up to 3 MiB")
        XCTAssertEqual(files, 6, "root, a.txt, d, big.bin, e, f")
    }

    func testOpendirReaddirAndReleasedir() throws {
        let f = try fixture()
        let d = try f.ino("d")
        guard case .success(.open(let fh, let keep)) = f.fs.opendir(ino: d) else { return XCTFail("opendir") }
        XCTAssertFalse(keep)
        guard case .success(.directory(let all, 0)) = f.fs.readdir(ino: d, fh: fh, offset: 0) else { return XCTFail("readdir") }
        XCTAssertEqual(all.map(\.name), [".", "..", "big.bin", "e"])
        XCTAssertEqual(all[1].attr.ino, Namespace.rootIno)
        guard case .success(.directory(_, let offset)) = f.fs.readdir(ino: d, fh: fh, offset: 3) else { return XCTFail("readdir") }
        XCTAssertEqual(offset, 3, "the bridge sends the entries from the kernel's offset on")
        XCTAssertEqual(f.fs.opendir(ino: try f.ino("a.txt")).errno, ENOTDIR)
        XCTAssertEqual(f.fs.opendir(ino: 9999).errno, ENOENT)
        XCTAssertEqual(f.fs.readdir(ino: d, fh: 777, offset: 0).errno, EBADF)
        guard case .success(.none) = f.fs.releasedir(ino: d, fh: fh) else { return XCTFail("releasedir") }
        XCTAssertEqual(f.fs.readdir(ino: d, fh: fh, offset: 0).errno, EBADF, "released")
    }

    func testOpenErrors() throws {
        let f = try fixture()
        let file = try f.ino("a.txt")
        XCTAssertEqual(f.open(try f.ino("d")).errno, EISDIR)
        XCTAssertEqual(f.open(9999).errno, ENOENT)
        for flags in [O_WRONLY, O_RDWR, O_RDONLY | O_TRUNC, O_RDONLY | O_APPEND] {
            XCTAssertEqual(f.open(file, flags: flags).errno, EROFS, "flags \(flags)")
        }
        XCTAssertEqual(f.read(12345, offset: 0, size: 10).errno, EBADF)
        let fh = try f.openHandle(file)
        guard case .success(.none) = f.fs.release(ino: file, fh: fh) else { return XCTFail("release") }
        XCTAssertEqual(f.read(fh, offset: 0, size: 10).errno, EBADF, "released")
    }

    func testReadsOfCachedContentAreHits() throws {
        let f = try fixture()
        try f.cacheWhole("p/d/big.bin")
        let data = try XCTUnwrap(f.objectBytes("p/d/big.bin"))
        let fh = try f.openHandle(try f.ino("d/big.bin"))
        let bs = Int(CacheFormat.blockSize)
        for (offset, size) in [(0, 4096), (bs - 10, 20), (2 * bs, 5000), (big - 1, 1), (100, 3 * bs)] {
            let got = try f.read(fh, offset: Int64(offset), size: size).get()
            XCTAssertEqual(got, Array(data[offset..<min(big, offset + size)]), "at \(offset)")
        }
        XCTAssertEqual(try f.read(fh, offset: Int64(big), size: 10).get(), [], "at the end")
        XCTAssertEqual(f.fs.readCounts.hits, 5)
        XCTAssertEqual(f.fs.readCounts.misses, 0)
        XCTAssertEqual(f.transport.startedOrders.count, 0, "nothing fetched")
    }

    func testReadThatMissesFetchesThenHits() throws {
        let f = try fixture()
        let data = try XCTUnwrap(f.objectBytes("p/d/big.bin"))
        let fh = try f.openHandle(try f.ino("d/big.bin"))
        let bs = Int(CacheFormat.blockSize)
        XCTAssertEqual(try f.read(fh, offset: Int64(bs - 5), size: 10).get(), Array(data[(bs - 5)..<(bs + 5)]))
        XCTAssertEqual(f.fs.readCounts.misses, 1)
        XCTAssertGreaterThanOrEqual(f.transport.startedOrders.count, 1)
        // The blocks are recorded by the committer; a read of them is then a hit.
        let deadline = Date().addingTimeInterval(10)
        while f.filler.pendingBlocks > 0 && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(try f.read(fh, offset: Int64(bs), size: 100).get(), Array(data[bs..<(bs + 100)]))
        XCTAssertEqual(f.fs.readCounts.hits, 1)
    }

    func testSequentialReaderGetsReadAhead() throws {
        let f = try fixture(readAheadBlocks: 4)
        let data = try XCTUnwrap(f.objectBytes("p/d/big.bin"))
        let fh = try f.openHandle(try f.ino("d/big.bin"))
        var offset = 0
        var got: [UInt8] = []
        while offset < big {
            got += try f.read(fh, offset: Int64(offset), size: 256 << 10).get()
            offset += 256 << 10
        }
        XCTAssertEqual(got, data)
        XCTAssertLessThan(f.fs.readCounts.misses, Int64(big / (256 << 10)), "read-ahead made later reads hits")
    }

    func testOpenAfterTheTTLOfAChangedObjectIsStaleAndTheOldHandleNeverSeesTheNewBytes() throws {
        let f = try fixture()
        try f.cacheWhole("p/a.txt")
        let old = try f.ino("a.txt")
        let oldBytes = try XCTUnwrap(f.objectBytes("p/a.txt"))
        let fh = try f.openHandle(old)
        XCTAssertEqual(try f.read(fh, offset: 0, size: 4096).get(), oldBytes)
        f.store.put(bucket: MountFixture.bucket, key: "p/a.txt", content(2000, seed: 9))
        XCTAssertNotNil(try f.openHandle(old), "within the TTL the old version opens")
        f.advance(61)
        XCTAssertEqual(f.open(old).errno, ESTALE, "a new version: the kernel looks the name up again")
        let new = try f.ino("a.txt")
        XCTAssertNotEqual(new, old, "a new version gets a new inode")
        let fh2 = try f.openHandle(new)
        XCTAssertEqual(try f.read(fh2, offset: 0, size: 4096).get(), content(2000, seed: 9))
        // The revalidation dropped the old version's data: the mount never serves a dropped
        // version (the kernel keeps the pages it read), so the old handle gets ESTALE.
        XCTAssertEqual(f.read(fh, offset: 0, size: 4096).errno, ESTALE, "never the new bytes")
    }

    func testMissOnAnObjectChangedInTheBucketIsStale() throws {
        let f = try fixture()
        let ino = try f.ino("d/big.bin")
        let fh = try f.openHandle(ino)
        f.store.put(bucket: MountFixture.bucket, key: "p/d/big.bin", content(100, seed: 5))
        XCTAssertEqual(f.read(fh, offset: 0, size: 100).errno, ESTALE, "If-Match fails: never the new bytes")
        XCTAssertTrue(f.namespace.needsRevalidation(ino), "the next open asks for the current version")
    }

    func testOpenAfterTheTTLOfADeletedObjectIsNotFound() throws {
        let f = try fixture()
        let ino = try f.ino("a.txt")
        f.store.delete(bucket: MountFixture.bucket, key: "p/a.txt")
        f.advance(61)
        XCTAssertEqual(f.open(ino).errno, ENOENT)
        guard case .success(.noEntry) = f.fs.lookup(parent: Namespace.rootIno, name: "a.txt") else {
            return XCTFail("the name is gone")
        }
    }

    func testListingRefusedIsEACCESAndOtherFailuresEIO() throws {
        let denied = S3Error(kind: .http, operation: "ListObjectsV2", bucket: "b", status: 403, code: "AccessDenied",
                             message: "denied")
        let f = try fixture(lazy: true, listingStore: FaultInjectingStore(MemoryObjectStore(), failures: [denied, denied]))
        XCTAssertEqual(f.fs.lookup(parent: Namespace.rootIno, name: "a.txt").errno, EACCES)
        XCTAssertEqual(f.fs.opendir(ino: Namespace.rootIno).errno, EACCES)
        let down = S3Error(kind: .transport(curlCode: 7), operation: "ListObjectsV2", bucket: "b", message: "refused")
        let g = try fixture(lazy: true, listingStore: FaultInjectingStore(MemoryObjectStore(), failures: [down]))
        XCTAssertEqual(g.fs.lookup(parent: Namespace.rootIno, name: "a.txt").errno, EIO)
    }

    func testLazyListingThroughTheRemote() throws {
        let f = try fixture(lazy: true)
        XCTAssertEqual(try f.ino("d/e/f") > Namespace.rootIno, true)
        let fh = try f.openHandle(try f.ino("d/e/f"))
        XCTAssertEqual(try f.read(fh, offset: 0, size: 100).get(), content(10, seed: 3))
    }
}
