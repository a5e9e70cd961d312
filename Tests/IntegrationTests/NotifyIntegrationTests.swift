import Foundation
@testable import SoakCore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `soak mount --foreground` under a NOTIFY_SOCKET, as systemd runs deploy/systemd/soak@.service
/// (Type=notify): the test binds the datagram socket systemd would and reads what arrives.
final class NotifyIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    var mnt = ""
    var running: Process?

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("no /dev/fuse") }
        bucket = Harness.uniqueBucket("notify")
        work = try Harness.tempDir("notify")
        mnt = work + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws {
        if let p = running, p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        umount2(mnt, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: work)
    }

    /// A bound datagram socket: systemd's side of NOTIFY_SOCKET.
    final class Listener {
        let fd: Int32
        init(path: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0, var a = SystemdNotifier.address(path) else { throw POSIXError(.EINVAL) }
            let rc = withUnsafePointer(to: &a.sockaddr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, a.length) }
            }
            guard rc == 0 else { close(fd); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
        }
        deinit { close(fd) }
        /// The next message, or nil after `seconds`.
        func receive(within seconds: Double) -> String? {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(seconds * 1000)) == 1 else { return nil }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buf, buf.count, 0)
            return n < 0 ? nil : String(decoding: buf[..<n], as: UTF8.self)
        }
    }

    /// Whether the mountpoint is a live mount that answers (its root opens on another device
    /// than its parent directory). Called the moment READY=1 arrives: a READY sent before the
    /// mount is in place finds the plain directory here.
    func answering() -> Bool {
        let fd = open(mnt, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var st = stat(), parent = stat()
        guard fstat(fd, &st) == 0, stat(work, &parent) == 0 else { return false }
        return st.st_dev != parent.st_dev
    }

    /// STATUS while listing, READY=1 only once the mount answers (exactly once), STOPPING=1 on
    /// SIGTERM, and none of it from a worker process, which never sees NOTIFY_SOCKET.
    func testReadyOnceTheMountAnswersAndStoppingOnSIGTERM() throws {
        let sums = try Harness.uploadTree(["a.bin": 3_000_000, "d/b.txt": 1000], bucket: bucket, prefix: "n/", work: work)
        let socketPath = work + "/notify.sock"
        let listener = try Listener(path: socketPath)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.soakBinary)
        p.arguments = ["mount", "s3://\(bucket)/n/", mnt, "--endpoint-url", endpoint, "--cache-dir", work + "/cache",
                       "--foreground"]
        var env = Harness.env
        env["NOTIFY_SOCKET"] = socketPath
        env["MIN_PROCESSES"] = "1"
        p.environment = env
        p.standardInput = FileHandle.nullDevice
        let log = work + "/mount.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try p.run()
        running = p
        func logText() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        var messages: [String] = []
        var answeredAtReady: Bool?
        while let m = listener.receive(within: 30) {
            messages.append(m)
            if m.split(separator: "\n").contains("READY=1") { answeredAtReady = answering(); break }
        }
        XCTAssertEqual(messages.first, "STATUS=listing s3://\(bucket)/n/", "\(messages)")
        XCTAssertEqual(messages.last, "READY=1\nSTATUS=mounted s3://\(bucket)/n/ at \(mnt)", "\(messages) \(logText())")
        XCTAssertEqual(answeredAtReady, true, "READY=1 arrived before the mount answered")

        // The mount serves, and its workers (started for the read) have no NOTIFY_SOCKET.
        XCTAssertEqual(try Harness.sha256(mnt + "/a.bin"), sums["a.bin"])
        let workers = Harness.children(of: p.processIdentifier).filter {
            ((try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8)) ?? "").contains("__worker")
        }
        XCTAssertFalse(workers.isEmpty, "no worker process to inspect")
        for w in workers {
            let environ = FileManager.default.contents(atPath: "/proc/\(w)/environ") ?? Data()
            XCTAssertFalse(environ.split(separator: 0).contains { $0.starts(with: Array("NOTIFY_SOCKET=".utf8)) },
                           "NOTIFY_SOCKET reached worker \(w)")
        }
        XCTAssertNil(listener.receive(within: 0.5), "nothing more until the stop")

        kill(p.processIdentifier, SIGTERM)
        let stopping = listener.receive(within: 20)
        XCTAssertEqual(stopping, "STOPPING=1\nSTATUS=unmounting \(mnt)", logText())
        let deadline = Date().addingTimeInterval(20)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        XCTAssertFalse(p.isRunning, "mount did not stop on SIGTERM")
        XCTAssertEqual(p.terminationStatus, 0, logText())
        XCTAssertNil(listener.receive(within: 0.2), "no second READY or STOPPING")
    }

    /// A background mount (no --foreground) is not what a Type=notify unit starts: neither the
    /// command nor its detached child sends anything.
    func testBackgroundMountSendsNothing() throws {
        _ = try Harness.uploadTree(["x.txt": 10], bucket: bucket, prefix: "b/", work: work)
        let socketPath = work + "/notify.sock"
        let listener = try Listener(path: socketPath)
        let r = try Harness.soak(["mount", "s3://\(bucket)/b/", mnt, "--endpoint-url", endpoint, "--cache-dir", work + "/cache"],
                                 env: ["NOTIFY_SOCKET": socketPath], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(answering())
        XCTAssertEqual(umount2(mnt, 0), 0, String(cString: strerror(errno)))
        XCTAssertNil(listener.receive(within: 1), "a background mount notified")
    }
}
