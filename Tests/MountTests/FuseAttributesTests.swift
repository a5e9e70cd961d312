/// What the bridge tells the kernel about an inode (`FuseRequest.stat`), without libfuse
/// running: modes of the read-only mount, sizes in 512-byte blocks, 1 MiB I/O size, times
/// with their nanoseconds.
import Foundation
import XCTest
@testable import Mount
#if canImport(Glibc)
import Glibc
#endif

final class FuseAttributesTests: XCTestCase {
    func testAFile() {
        let st = FuseRequest.stat(FuseAttributes(ino: 42, size: 1025, isDirectory: false, links: 1, mtime: 1_700_000_000.25,
                                                 uid: 1000, gid: 100))
        XCTAssertEqual(st.st_ino, 42)
        XCTAssertEqual(st.st_mode, S_IFREG | 0o444, "read-only for everyone")
        XCTAssertEqual(st.st_nlink, 1)
        XCTAssertEqual(st.st_size, 1025)
        XCTAssertEqual(st.st_blocks, 3, "512-byte blocks, rounded up")
        XCTAssertEqual(st.st_blksize, 1 << 20)
        XCTAssertEqual(st.st_uid, 1000)
        XCTAssertEqual(st.st_gid, 100)
        XCTAssertEqual(st.st_mtim.tv_sec, 1_700_000_000)
        XCTAssertEqual(st.st_mtim.tv_nsec, 250_000_000)
        XCTAssertEqual(st.st_ctim.tv_sec, st.st_mtim.tv_sec)
        XCTAssertEqual(st.st_atim.tv_nsec, st.st_mtim.tv_nsec)
    }

    func testADirectory() {
        let st = FuseRequest.stat(FuseAttributes(ino: 1, size: 0, isDirectory: true, links: 5, mtime: 3, uid: 0, gid: 0))
        XCTAssertEqual(st.st_mode, S_IFDIR | 0o555)
        XCTAssertEqual(st.st_nlink, 5)
        XCTAssertEqual(st.st_blocks, 0)
        XCTAssertEqual(st.st_mtim.tv_nsec, 0)
    }

    func testMountErrorAndLibfuseVersion() {
        XCTAssertEqual("\(MountError("no FUSE session"))", "no FUSE session")
        XCTAssertTrue(fuseVersion().hasPrefix("3."), fuseVersion())
    }
}
