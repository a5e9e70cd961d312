import Foundation
import XCTest

/// A fresh vfat image mounted for a test: loop-mounted with the kernel's vfat, or where the
/// kernel has none, with fusefat (FUSE, read-write). vfat has no O_TMPFILE, no xattrs, no links
/// and keeps mtimes in 2-second steps. `mount` skips (with the reason) where neither works.
final class VfatImage {
    /// The mountpoint, once mounted.
    private(set) var mounted: String?
    /// True when fusefat serves the image (it corrupts files written side by side).
    private(set) var fusefat = false
    private var fuseProcess: Process?

    /// Mounts an image of `mib` MiB made in `work`; returns the mountpoint.
    func mount(mib: Int, work: String) throws -> String {
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

    /// Unmounts (if mounted) and waits for fusefat to end.
    func unmount() {
        if let m = mounted { _ = try? Harness.run("/bin/umount", [m]) }
        mounted = nil
        if let p = fuseProcess {
            let deadline = Date().addingTimeInterval(5)
            while p.isRunning && Date() < deadline { usleep(20_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        }
        fuseProcess = nil
    }
}
