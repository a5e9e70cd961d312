import Foundation
import XCTest

/// The mountpoint a container gets: a volume bind-mounted onto an empty directory (Docker's
/// `-v ./soak-mnt:/mnt/soak:rshared`, a Kubernetes hostPath with Bidirectional propagation).
/// `soak mount` must mount over it, and with shared propagation the mount shows at the volume's
/// source, as the host sees it; a live FUSE mount is still never mounted over.
final class MountpointIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    var vol = ""   // the volume's source ("the host's directory")
    var mnt = ""   // where it is bind-mounted ("the container's mountpoint")
    var running: [Process] = []

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("no /dev/fuse") }
        guard getuid() == 0 else { throw XCTSkip("bind mounts need root") }
        bucket = Harness.uniqueBucket("mntpt")
        work = try Harness.tempDir("mntpt")
        vol = work + "/vol"
        mnt = work + "/mnt"
        for d in [vol, mnt] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws {
        for p in running where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        // The FUSE mount (maybe at both places), then the binds.
        for _ in 0..<3 { for d in [mnt, vol] { umount2(d, Int32(MNT_DETACH)) } }
        try? FileManager.default.removeItem(atPath: work)
    }

    /// `vol` becomes a shared mount and `mnt` a bind of it, in the same peer group: what Docker
    /// does for an rshared bind (on a host whose / is shared) and the kubelet for Bidirectional.
    func bindVolume() throws {
        for (src, dst, flags) in [(vol, vol, UInt(MS_BIND)), (vol, vol, UInt(MS_SHARED)), (vol, mnt, UInt(MS_BIND))] {
            guard mount(src, dst, nil, flags, nil) == 0 else {
                throw XCTSkip("mount(\(src), \(dst), \(flags)): \(String(cString: strerror(errno)))")
            }
        }
        XCTAssertFalse(isFuse(mnt), "\(mnt) should be a plain bind before soak mounts")
    }

    /// Whether the file system seen at `path` (its last mountinfo entry) is a FUSE one.
    func isFuse(_ path: String) -> Bool {
        let info = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        guard let line = info.split(separator: "\n").last(where: { $0.split(separator: " ").dropFirst(4).first.map(String.init) == path }),
              let sep = line.range(of: " - ") else { return false }
        return line[sep.upperBound...].hasPrefix("fuse")
    }

    func startMount(cacheDir: String) throws -> (Process, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.soakBinary)
        p.arguments = ["mount", "s3://\(bucket)/v", mnt, "--endpoint-url", endpoint, "--cache-dir", cacheDir, "--foreground"]
        p.environment = Harness.env
        p.standardInput = FileHandle.nullDevice
        let log = work + "/mount-\(running.count).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try p.run()
        running.append(p)
        return (p, log)
    }

    func waitExit(_ p: Process, seconds: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        return !p.isRunning
    }

    func testMountsOverABindMountedVolumeAndShowsAtItsSource() throws {
        let sums = try Harness.uploadTree(["a.bin": 3 << 20, "d/b.bin": 1000], bucket: bucket, prefix: "v/", work: work)
        try bindVolume()
        let (p, log) = try startMount(cacheDir: work + "/cache")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && p.isRunning && !isFuse(mnt) { usleep(50_000) }
        XCTAssertTrue(p.isRunning && isFuse(mnt), "not mounted: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        guard isFuse(mnt) else { return }
        XCTAssertEqual(try Harness.sha256(mnt + "/a.bin"), sums["a.bin"])
        // Propagated to the volume's source: the host's view, and that of every other container.
        XCTAssertTrue(isFuse(vol), "the mount did not propagate to \(vol)")
        XCTAssertEqual(try Harness.sha256(vol + "/d/b.bin"), sums["d/b.bin"])
        kill(p.processIdentifier, SIGTERM)
        XCTAssertTrue(waitExit(p))
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertFalse(isFuse(mnt), "still mounted after SIGTERM")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mnt), [], "the bind is left as it was")
    }

    func testALiveFuseMountIsNeverMountedOver() throws {
        _ = try Harness.uploadTree(["a.bin": 10], bucket: bucket, prefix: "v/", work: work)
        try bindVolume()
        let (p, _) = try startMount(cacheDir: work + "/cache")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && p.isRunning && !isFuse(mnt) { usleep(50_000) }
        XCTAssertTrue(isFuse(mnt))
        let r = try Harness.soak(["mount", "s3://\(bucket)/v", mnt, "--endpoint-url", endpoint, "--cache-dir",
                                  work + "/cache2", "--foreground"], timeout: 30)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("is already a mount point (fuse"), r.stderr)
        XCTAssertTrue(p.isRunning, "the first mount must be left alone")
        kill(p.processIdentifier, SIGTERM)
        XCTAssertTrue(waitExit(p))
    }
}
