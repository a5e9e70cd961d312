import CSys
@testable import Download
import Foundation
import SoakCore
import XCTest
@testable import Engine

/// `DestinationRoot`: paths resolved beneath DEST, with openat2 and with the component walk
/// used on kernels without it.
final class DestinationRootTests: XCTestCase {
    private var work = ""
    private var dest = ""
    private var outside = ""

    override func setUpWithError() throws {
        work = NSTemporaryDirectory() + "soak-destroot-\(UUID().uuidString.prefix(8))"
        dest = work + "/dest"
        outside = work + "/outside"
        for d in [dest + "/real/sub", outside] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
        try Data("secret".utf8).write(to: URL(fileURLWithPath: outside + "/file"))
        try Data("mine".utf8).write(to: URL(fileURLWithPath: dest + "/real/file"))
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: dest + "/abs", withDestinationPath: outside)
        try fm.createSymbolicLink(atPath: dest + "/up", withDestinationPath: "../outside")
        try fm.createSymbolicLink(atPath: dest + "/inside", withDestinationPath: "real")
        try fm.createSymbolicLink(atPath: dest + "/link.txt", withDestinationPath: outside + "/file")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: work) }

    private func modes() throws -> [DestinationRoot] {
        var roots = [try DestinationRoot(path: dest, useOpenat2: false)]
        if DestinationRoot.kernelHasOpenat2 { roots.append(try DestinationRoot(path: dest, useOpenat2: true)) }
        return roots
    }

    func testLinksOutOfDestAreRefusedInBothModes() throws {
        for root in try modes() {
            let mode = root.beneath ? "openat2" : "walk"
            for rel in ["abs/file", "up/file", "abs/new", "link.txt"] {
                XCTAssertThrowsError(try root.open(rel, O_WRONLY | O_CREAT), "\(mode) \(rel)") { e in
                    XCTAssertTrue(e is SymlinkRefused, "\(mode) \(rel): \(e)")
                }
            }
            XCTAssertThrowsError(try root.makeDirectories("abs/x/y"), mode) { XCTAssertTrue($0 is SymlinkRefused, "\(mode): \($0)") }
            XCTAssertThrowsError(try root.openDirectory("up")) { XCTAssertTrue($0 is SymlinkRefused, "\(mode): \($0)") }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outside), ["file"])
        XCTAssertEqual(try String(contentsOfFile: outside + "/file", encoding: .utf8), "secret")
    }

    func testPlainPathsAndDirectoriesWork() throws {
        for root in try modes() {
            let mode = root.beneath ? "openat2" : "walk"
            try root.makeDirectories("n-\(mode)/a/b")
            let fd = try root.open("n-\(mode)/a/b/f", O_WRONLY | O_CREAT)
            XCTAssertEqual(write(fd, "x", 1), 1)
            close(fd)
            XCTAssertEqual(try String(contentsOfFile: dest + "/n-\(mode)/a/b/f", encoding: .utf8), "x")
            let d = try root.openDirectory("")
            XCTAssertEqual(DestinationRoot.kind(in: d, "real"), S_IFDIR)
            XCTAssertEqual(DestinationRoot.kind(in: d, "link.txt"), S_IFLNK)
            XCTAssertNil(DestinationRoot.kind(in: d, "missing"))
            XCTAssertThrowsError(try root.checkReplaceable(in: d, "link.txt", rel: "link.txt")) { XCTAssertTrue($0 is SymlinkRefused) }
            XCTAssertThrowsError(try root.checkReplaceable(in: d, "real", rel: "real"))
            XCTAssertNoThrow(try root.checkReplaceable(in: d, "missing", rel: "missing"))
            close(d)
        }
    }

    /// A link that stays inside DEST is followed with openat2 (RESOLVE_BENEATH); the walk
    /// follows none.
    func testLinksInsideDestFollowOnlyWithOpenat2() throws {
        for root in try modes() {
            if root.beneath {
                let fd = try root.open("inside/file", O_RDONLY)
                close(fd)
            } else {
                XCTAssertThrowsError(try root.open("inside/file", O_RDONLY)) { XCTAssertTrue($0 is SymlinkRefused) }
            }
        }
    }

    func testTemporaryNamesAndCoarseMtimes() {
        let hex = String(repeating: "0a", count: 20)
        XCTAssertTrue(PartialFile.isTemporaryName(hex + ".tmp"))
        XCTAssertTrue(PartialFile.isTemporaryName(hex + ".state.tmp"))
        for n in [hex + ".part", hex + ".state", "x" + hex + ".tmp", String(hex.dropLast()) + ".tmp", "notes.tmp",
                  String(repeating: "0A", count: 20) + ".tmp"] {
            XCTAssertFalse(PartialFile.isTemporaryName(n), n)
        }
        XCTAssertEqual(PartialFile(destination: "/d", relativePath: "k").tempName.count, 44)
        XCTAssertTrue(Downloader.mtimeMatches(1_700_000_001, 1_700_000_001))
        XCTAssertTrue(Downloader.mtimeMatches(1_700_000_000, 1_700_000_001), "FAT rounds down to even seconds")
        XCTAssertFalse(Downloader.mtimeMatches(1_699_999_999, 1_700_000_001))
        XCTAssertFalse(Downloader.mtimeMatches(1_700_000_002, 1_700_000_001))
    }
}
