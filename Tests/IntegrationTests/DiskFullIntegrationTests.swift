import Cache
import Foundation
import XCTest

/// A full disk, for DEST and for the cache (a small tmpfs): a clear error, nothing corrupt,
/// what is complete stays, a rerun with space finishes, and the mount keeps serving what it has.
final class DiskFullIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    var small = ""
    var sums: [String: String] = [:]
    var running: Process?
    var mnt = ""

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        guard getuid() == 0 else { throw XCTSkip("mounting a tmpfs needs root") }
        bucket = Harness.uniqueBucket("full" + String(name.split(separator: " ").last!.prefix(12)).lowercased()
            .filter { $0.isLetter || $0.isNumber })
        work = try Harness.tempDir("full")
        small = work + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        let r = try Harness.run("/bin/mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", small])
        guard r.status == 0 else { throw XCTSkip("cannot mount a tmpfs: \(r.stderr)") }
        try Harness.fixture(["mkbucket", bucket])
        var files: [String: Int] = ["big.bin": 8 << 20]
        for i in 0..<4 { files["a/\(i).bin"] = 1 << 20 }
        sums = try Harness.uploadTree(files, bucket: bucket, prefix: "p/", work: work, source: work + "/src")
    }

    override func tearDownWithError() throws {
        if let p = running, p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        if !mnt.isEmpty { umount2(mnt, Int32(MNT_DETACH)) }
        if !small.isEmpty { umount2(small, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: work)
    }

    var env: [String: String] { ["MAX_RETRIES": "2", "RETRY_DELAY": "0.05"] }

    func grow() throws {
        XCTAssertEqual(try Harness.run("/bin/mount", ["-o", "remount,size=64m", small]).status, 0)
    }

    func testDownloadToAFullDiskFailsClearlyKeepsWhatIsCompleteAndResumes() throws {
        let dest = small + "/dest"
        let r = try Harness.soak(["download", "s3://\(bucket)/p", dest, "--endpoint-url", endpoint], env: env, timeout: 120)
        XCTAssertNotEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.uncaughtSignal)
        XCTAssertTrue(r.stderr.contains("No space left on device"), r.stderr)
        // Whatever is at its final path is complete and right.
        for (key, sum) in sums where FileManager.default.fileExists(atPath: dest + "/" + key) {
            XCTAssertEqual(try Harness.sha256(dest + "/" + key), sum, key)
        }
        try grow()
        let again = try Harness.soak(["download", "s3://\(bucket)/p", dest, "--endpoint-url", endpoint], env: env, timeout: 120)
        XCTAssertEqual(again.status, 0, again.stderr)
        for (key, sum) in sums { XCTAssertEqual(try Harness.sha256(dest + "/" + key), sum, key) }
    }

    func testPrewarmIntoAFullCacheEndsCleanlyAndTheCacheStaysSound() throws {
        let cache = small + "/cache"
        let r = try Harness.soak(["prewarm", "s3://\(bucket)/p", "--cache-dir", cache, "--endpoint-url", endpoint],
                                 env: env, timeout: 120)
        XCTAssertFalse(r.uncaughtSignal)
        XCTAssertNotEqual(r.status, 0, "12 MiB cannot fit in 6 MiB: \(r.stderr)")
        let v = try Harness.soak(["cache", "verify", "--cache-dir", cache, "--json"])
        XCTAssertEqual(v.status, 0, v.stdout + v.stderr)
        XCTAssertTrue(v.stdout.contains("\"corruptBlocks\":0"), v.stdout)
        XCTAssertLessThanOrEqual(try DiskCache(directory: cache).stats().bytes, 6 << 20)
        try grow()
        let again = try Harness.soak(["prewarm", "s3://\(bucket)/p", "--cache-dir", cache, "--endpoint-url", endpoint],
                                     env: env, timeout: 120)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try DiskCache(directory: cache).stats().bytes, Int64(12 << 20))
    }

    func testTheMountKeepsServingWhatIsCachedWhenTheCacheDiskIsFull() throws {
        mnt = work + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.soakBinary)
        p.arguments = ["mount", "s3://\(bucket)/p", mnt, "--endpoint-url", endpoint, "--cache-dir", small + "/cache",
                       "--foreground", "--read-ahead", "0"]
        p.environment = Harness.env.merging(env) { $1 }
        p.standardInput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        running = p
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !FileManager.default.fileExists(atPath: mnt + "/a") { usleep(50_000) }
        // Read a/0.bin and keep it open (open files are never evicted).
        let fd = open(mnt + "/a/0.bin", O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(try Harness.sha256(mnt + "/a/0.bin"), sums["a/0.bin"])
        // Fill the cache's file system.
        let filler = open(small + "/filler", O_WRONLY | O_CREAT, 0o600)
        var chunk = [UInt8](repeating: 7, count: 1 << 16)
        while chunk.withUnsafeMutableBytes({ write(filler, $0.baseAddress, $0.count) }) > 0 {}
        XCTAssertEqual(errno, ENOSPC)
        close(filler)
        // An uncached file fails (no hang), what is cached is still served from the cache.
        let t0 = Date()
        XCTAssertThrowsError(try Harness.sha256(mnt + "/a/1.bin"))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 60)
        try "3\n".write(toFile: "/proc/sys/vm/drop_caches", atomically: false, encoding: .utf8)  // not from the page cache
        var got = [UInt8](repeating: 0, count: 1 << 20)
        XCTAssertEqual(pread(fd, &got, got.count, 0), got.count)
        var want = [UInt8](repeating: 0, count: 1 << 20)
        let src = open(work + "/src/a/0.bin", O_RDONLY)
        XCTAssertEqual(pread(src, &want, want.count, 0), want.count)
        close(src)
        XCTAssertTrue(got == want, "cached bytes served while the disk is full")
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: mnt)), ["a", "big.bin"])
        // With space again, the same read works.
        unlink(small + "/filler")
        XCTAssertEqual(try Harness.sha256(mnt + "/a/1.bin"), sums["a/1.bin"])
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
    }
}
