import Foundation
import XCTest

/// `soak download` into awkward destinations: a filesystem without O_TMPFILE, xattrs or
/// 1-second mtimes (a loop-mounted vfat image), symbolic links already in DEST, and failed runs.
final class DestinationIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    /// The vfat image (`VfatImage`); fusefat, where it serves the image, corrupts files written
    /// side by side (its FAT bookkeeping is not safe for that): downloads into it take one
    /// transfer at a time.
    let vfat = VfatImage()
    var fusefat: Bool { vfat.fusefat }

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket(String(name.split(separator: " ").last!.prefix(20)).lowercased()
            .filter { $0.isLetter || $0.isNumber })
        work = try Harness.tempDir("dest")
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws {
        vfat.unmount()
        try? FileManager.default.removeItem(atPath: work)
    }

    func download(_ prefix: String, _ dest: String, env: [String: String] = [:]) throws -> Harness.Result {
        try Harness.soak(["download", "s3://\(bucket)/\(prefix)", dest, "--endpoint-url", endpoint], env: env)
    }

    func upload(_ files: [String: Int], prefix: String) throws -> [String: String] {
        try Harness.uploadTree(files, bucket: bucket, prefix: prefix, work: work)
    }

    /// Every file under `dir` (relative path → sha256, symlinks as "-> target").
    func snapshot(_ dir: String) throws -> [String: String] {
        var out: [String: String] = [:]
        let fm = FileManager.default
        for rel in fm.enumerator(atPath: dir)?.compactMap({ $0 as? String }) ?? [] {
            let p = dir + "/" + rel
            if let t = try? fm.destinationOfSymbolicLink(atPath: p) { out[rel] = "-> " + t; continue }
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue { out[rel] = try Harness.sha256(p) }
            else { out[rel] = "dir" }
        }
        return out
    }

    func mountVfat(mib: Int) throws -> String { try vfat.mount(mib: mib, work: work) }

    /// vfat has no O_TMPFILE, no xattrs, no links, and keeps mtimes in 2-second steps: small
    /// objects go through named temporary files, every byte lands, and a rerun skips them all.
    /// (Before named temporary files, every object of 16 MiB or less failed here.)
    func testDownloadIntoVfatWithoutTmpfileOrXattrs() throws {
        let mnt = try mountVfat(mib: 96)
        var files = ["small.bin": 100_000, "sub/deeper/three.bin": 3 * 1024 * 1024 + 5, "empty.dat": 0, "tiny.txt": 5]
        // fusefat loses a file written at several offsets, even one range after another: a split
        // object (written in ranges, out of order) is only checked on the kernel's vfat.
        if !fusefat { files["big.bin"] = 20 * 1024 * 1024 + 17 }
        let sums = try upload(files, prefix: "v/")
        let dest = mnt + "/dest"
        let env = fusefat ? ["SOAK_TRANSFERS_PER_WORKER": "1", "MAX_PROCESSES": "1"] : [:]
        let r = try download("v/", dest, env: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        for (k, s) in sums { XCTAssertEqual(try Harness.sha256(dest + "/" + k), s, k) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/" + ".soak-partial"), "partial dir left behind")

        // A temporary file a killed worker left is soak's name: the next run removes it.
        let partials = dest + "/.soak-partial"
        try FileManager.default.createDirectory(atPath: partials, withIntermediateDirectories: false)
        let stale = partials + "/" + String(repeating: "ab", count: 20) + ".tmp"
        XCTAssertTrue(FileManager.default.createFile(atPath: stale, contents: Data("half".utf8)))

        let again = try download("v/", dest, env: env)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("0 downloaded, \(sums.count) already up to date"), again.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: partials), "stale temporary file or partial dir left")
        for (k, s) in sums { XCTAssertEqual(try Harness.sha256(dest + "/" + k), s, k) }
    }

    /// DEST/a -> outside (absolute) and DEST/b -> ../outside (climbing out): keys under them fail
    /// with one line each, nothing outside DEST changes, the links stay, the rest downloads.
    func testSymlinkedDirectoriesLeadingOutOfDestAreNotFollowed() throws {
        let sums = try upload(["a/passwd": 9, "a/big.bin": 20 * 1024 * 1024 + 1, "b/x.bin": 1000, "ok.txt": 10],
                              prefix: "s/")
        let marker = work + "/marker"
        XCTAssertTrue(FileManager.default.createFile(atPath: marker, contents: Data()))
        try Harness.fixture(["put", bucket, "s/a/newdir/", marker])
        let outside = work + "/outside", dest = work + "/dest"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
        try Data("precious\n".utf8).write(to: URL(fileURLWithPath: outside + "/passwd"))
        try FileManager.default.createSymbolicLink(atPath: dest + "/a", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: dest + "/b", withDestinationPath: "../outside")
        let before = try snapshot(outside)

        let r = try download("s/", dest)
        XCTAssertEqual(r.status, 3, r.stderr)  // partial: the other keys landed
        for k in ["a/passwd", "a/big.bin", "b/x.bin", "a/newdir/"] {
            let lines = r.stderr.split(separator: "\n").filter { $0.contains("s/\(k):") }
            XCTAssertEqual(lines.count, 1, "\(k): \(r.stderr)")
            XCTAssertTrue(lines.first?.contains("symbolic link") ?? false, "\(k): \(r.stderr)")
        }
        XCTAssertEqual(try snapshot(outside), before, "something outside DEST changed")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dest + "/a"), outside)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dest + "/b"), "../outside")
        XCTAssertEqual(try Harness.sha256(dest + "/ok.txt"), sums["ok.txt"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/.soak-partial"))
    }

    /// DEST/file.txt and DEST/big.bin are links to files outside DEST: neither is written
    /// through nor replaced; each key fails with one line.
    func testSymlinkedFilesInDestAreNeitherWrittenThroughNorReplaced() throws {
        let sums = try upload(["file.txt": 12, "big.bin": 20 * 1024 * 1024 + 3, "fine.bin": 77], prefix: "f/")
        let outside = work + "/outside", dest = work + "/dest"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
        for n in ["file.txt", "big.bin"] {
            try Data("precious \(n)\n".utf8).write(to: URL(fileURLWithPath: outside + "/" + n))
            try FileManager.default.createSymbolicLink(atPath: dest + "/" + n, withDestinationPath: outside + "/" + n)
        }
        let before = try snapshot(outside)
        let r = try download("f/", dest)
        XCTAssertEqual(r.status, 3, r.stderr)  // partial: the other keys landed
        for k in ["file.txt", "big.bin"] {
            let lines = r.stderr.split(separator: "\n").filter { $0.contains("f/\(k):") }
            XCTAssertEqual(lines.count, 1, "\(k): \(r.stderr)")
            XCTAssertTrue(lines.first?.contains("symbolic link") ?? false, "\(k): \(r.stderr)")
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dest + "/" + k), outside + "/" + k,
                           "the link was replaced")
        }
        XCTAssertEqual(try snapshot(outside), before, "something outside DEST changed")
        XCTAssertEqual(try Harness.sha256(dest + "/fine.bin"), sums["fine.bin"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/.soak-partial"))
    }

    /// A run that fails before anything lands leaves no `.soak-partial` it made, and keeps one
    /// it did not make.
    func testFailedRunLeavesNoEmptyPartialDirectory() throws {
        let dest = work + "/dest"
        let r = try download("x/", dest, env: ["AWS_SECRET_ACCESS_KEY": "wrong-secret-0000"])
        XCTAssertNotEqual(r.status, 0, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/.soak-partial"), "empty partial dir left behind")

        let other = work + "/other"
        try FileManager.default.createDirectory(atPath: other + "/.soak-partial", withIntermediateDirectories: true)
        let r2 = try download("x/", other, env: ["AWS_SECRET_ACCESS_KEY": "wrong-secret-0000"])
        XCTAssertNotEqual(r2.status, 0, r2.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: other + "/.soak-partial"), "removed a directory soak did not make")
    }
}
