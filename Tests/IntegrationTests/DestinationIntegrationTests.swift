import Foundation
import XCTest

/// `soak download` into awkward destinations: a filesystem without O_TMPFILE, xattrs or
/// 1-second mtimes (a loop-mounted vfat image), symbolic links already in DEST, and failed runs.
final class DestinationIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    var mounted: String?
    var fuseProcess: Process?
    /// The vfat image is served by fusefat, which corrupts files written side by side (its FAT
    /// bookkeeping is not safe for that): downloads into it take one transfer at a time.
    var fusefat = false

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket(String(name.split(separator: " ").last!.prefix(20)).lowercased()
            .filter { $0.isLetter || $0.isNumber })
        work = try Harness.tempDir("dest")
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws {
        if let m = mounted { _ = try? Harness.run("/bin/umount", [m]) }
        if let p = fuseProcess {
            let deadline = Date().addingTimeInterval(5)
            while p.isRunning && Date() < deadline { usleep(20_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        }
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

    /// Mounts a fresh vfat image of `mib` MiB: loop-mounted with the kernel's vfat, or where the
    /// kernel has none, with fusefat (FUSE, read-write). Skips (with the reason) where neither works.
    func mountVfat(mib: Int) throws -> String {
        fusefat = false
        let image = work + "/vfat.img", dir = work + "/vfat"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: image, contents: nil), truncate(image, off_t(mib) << 20) == 0 else {
            throw XCTSkip("cannot create a vfat image in \(work)")
        }
        let tool = { (names: [String]) in names.first { FileManager.default.isExecutableFile(atPath: $0) } }
        guard let mkfs = tool(["/usr/sbin/mkfs.vfat", "/sbin/mkfs.vfat"]) else {
            throw XCTSkip("mkfs.vfat not found (install dosfstools; scripts/install-deps does)")
        }
        let mk = try Harness.run(mkfs, [image])
        guard mk.status == 0 else { throw XCTSkip("mkfs.vfat failed: \(mk.stderr)") }
        let m = try Harness.run("/bin/mount", ["-o", "loop", "-t", "vfat", image, dir])
        if m.status == 0 {
            mounted = dir
            return dir
        }
        guard let fusefatPath = tool(["/usr/bin/fusefat", "/bin/fusefat"]) else {
            throw XCTSkip("cannot loop-mount a vfat image (\(m.stderr.split(separator: "\n").first ?? "")) and fusefat "
                          + "is not installed (scripts/install-deps installs it)")
        }
        // In the foreground, as a child of this test: a daemon would inherit the descriptor
        // Foundation's Process watches for its child's exit, and the wait would never end.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: fusefatPath)
        p.arguments = ["-f", "-o", "rw+", image, dir]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        fuseProcess = p
        fusefat = true
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && p.isRunning {
            let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
            if mounts.contains(" \(dir) ") {
                mounted = dir
                return dir
            }
            usleep(50_000)
        }
        throw XCTSkip("cannot mount a vfat image: mount: \(m.stderr); fusefat did not mount it")
    }

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
