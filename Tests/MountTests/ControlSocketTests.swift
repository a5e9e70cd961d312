/// The control socket end to end in one process: request line in, reply lines out, and `stop`
/// ending the accept thread's service (the listener shared with the metrics server); clients
/// that split, flood, vanish or say nothing; a dead mount's socket; paths too long.
import Foundation
import SoakCore
import Synchronization
import XCTest
@testable import Mount
#if canImport(Glibc)
import Glibc
#endif

final class ControlSocketTests: XCTestCase {
    func testRequestRepliesAndStop() throws {
        let dir = NSTemporaryDirectory() + "soak-control-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(dir, 0o700), 0)
        defer { rmdir(dir) }
        let server = ControlServer(cacheDir: dir) { request, send in
            for i in 0..<3 { _ = send(ControlReply(error: "\(request.op.rawValue) \(i)")) }
        }
        try server.start()
        var mode = stat()
        XCTAssertEqual(stat(ControlSocket.path(cacheDir: dir), &mode), 0)
        XCTAssertEqual(mode.st_mode & 0o777, 0o600, "only this user talks to the mount")

        for _ in 0..<2 {  // one thread per client: the second is served as well
            let fd = try XCTUnwrap(ControlSocket.connect(cacheDir: dir))
            var replies: [String] = []
            try ControlSocket.exchange(fd: fd, ControlRequest(op: .status)) { replies.append($0.error ?? "") }
            close(fd)
            XCTAssertEqual(replies, ["status 0", "status 1", "status 2"])
        }

        server.stop()
        XCTAssertNil(ControlSocket.connect(cacheDir: dir), "no socket once stopped")
        server.stop()  // twice is harmless
    }

    func testUnreadableRequestGetsAnError() throws {
        let dir = NSTemporaryDirectory() + "soak-control-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(dir, 0o700), 0)
        defer { rmdir(dir) }
        let server = ControlServer(cacheDir: dir) { _, send in _ = send(ControlReply(error: "handled")) }
        try server.start()
        defer { server.stop() }
        let fd = try XCTUnwrap(ControlSocket.connect(cacheDir: dir))
        defer { close(fd) }
        try Syscall.writeAll(fd, Array("not json\n".utf8), path: "control socket")
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = try buf.withUnsafeMutableBytes { try Syscall.readAll(fd, into: $0, path: "control socket") }
        XCTAssertTrue(String(decoding: buf[0..<n], as: UTF8.self).contains("unreadable request"))
    }

    func testRequestFieldsArriveWholeEvenWhenSentInPieces() throws {
        let dir = try temporaryDirectory(self, "control")
        let got = Mutex<ControlRequest?>(nil)
        let server = ControlServer(cacheDir: dir) { r, send in
            got.withLock { $0 = r }
            _ = send(ControlReply(error: "done"))
        }
        try server.start()
        defer { server.stop() }
        let fd = try XCTUnwrap(ControlSocket.connect(cacheDir: dir))
        defer { close(fd) }
        let request = ControlRequest(op: .prewarm, bucket: "b", prefix: "p/", rules: [.include("*.bin"), .exclude("tmp/*")],
                                     shard: "1/4")
        let line = Array(try JSONEncoder().encode(request)) + [0x0A]
        try Syscall.writeAll(fd, Array(line[..<10]), path: "control client")
        usleep(20_000)  // lets the server read the first piece alone
        try Syscall.writeAll(fd, Array(line[10...]), path: "control client")
        XCTAssertTrue(try readAll(fd).contains("done"))
        let r = try XCTUnwrap(got.withLock { $0 })
        XCTAssertEqual(r.op, .prewarm)
        XCTAssertEqual(r.bucket, "b")
        XCTAssertEqual(r.prefix, "p/")
        XCTAssertEqual(r.rules, [.include("*.bin"), .exclude("tmp/*")])
        XCTAssertEqual(r.shard, "1/4")
    }

    /// What a `soak prewarm` that is interrupted relies on: the handler's `send` turns false
    /// once the client is gone, so the work it streams for can stop.
    func testAClientThatGoesAwayEndsTheStream() throws {
        let dir = try temporaryDirectory(self, "control")
        let ended = expectation(description: "send returned false")
        let server = ControlServer(cacheDir: dir) { _, send in
            for _ in 0..<100_000 {
                guard send(ControlReply(error: "tick")) else { ended.fulfill(); return }
                usleep(1_000)
            }
        }
        try server.start()
        defer { server.stop() }
        let fd = try XCTUnwrap(ControlSocket.connect(cacheDir: dir))
        try Syscall.writeAll(fd, Array(try JSONEncoder().encode(ControlRequest(op: .prewarm))) + [0x0A], path: "control client")
        var one = [UInt8](repeating: 0, count: 16)
        XCTAssertGreaterThan(try one.withUnsafeMutableBytes { try Syscall.read(fd, into: $0, path: "control client") }, 0)
        close(fd)
        wait(for: [ended], timeout: 30)
    }

    func testAClientThatSaysNothingOrTooMuchIsDropped() throws {
        let dir = try temporaryDirectory(self, "control")
        let handled = Mutex(0)
        let server = ControlServer(cacheDir: dir) { _, send in
            handled.withLock { $0 += 1 }
            _ = send(ControlReply(error: "handled"))
        }
        try server.start()
        defer { server.stop() }
        close(try XCTUnwrap(ControlSocket.connect(cacheDir: dir)))  // connects and goes

        // Over a MiB with no end of line: the server stops reading and closes.
        let flood = try XCTUnwrap(ControlSocket.connect(cacheDir: dir))
        let chunk = [UInt8](repeating: 0x41, count: 64 * 1024)
        var sent = 0
        while sent <= 2 << 20, (try? chunk.withUnsafeBytes { try Syscall.sendAll(flood, $0, path: "control client") }) != nil {
            sent += chunk.count
        }
        XCTAssertGreaterThan(sent, 1 << 20)
        XCTAssertLessThanOrEqual(sent, 2 << 20, "the server closed instead of reading on")
        XCTAssertFalse((try? readAll(flood))?.contains("handled") ?? false)
        close(flood)

        // Still serving, and neither of those reached the handler.
        let fd = try XCTUnwrap(ControlSocket.connect(cacheDir: dir))
        defer { close(fd) }
        var replies: [String] = []
        try ControlSocket.exchange(fd: fd, ControlRequest(op: .status)) { replies.append($0.error ?? "") }
        XCTAssertEqual(replies, ["handled"])
        XCTAssertEqual(handled.withLock { $0 }, 1)
    }

    func testASocketLeftByADeadMountIsReplaced() throws {
        let dir = try temporaryDirectory(self, "control")
        let path = ControlSocket.path(cacheDir: dir)
        // A bound socket whose owner is gone: the file stays, nothing accepts.
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let dead = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertEqual(withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(dead, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }, 0)
        close(dead)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        XCTAssertNil(ControlSocket.connect(cacheDir: dir), "nobody answers on a dead mount's socket")

        let server = ControlServer(cacheDir: dir) { _, send in _ = send(ControlReply(error: "alive")) }
        try server.start()
        defer { server.stop() }
        let fd = try XCTUnwrap(ControlSocket.connect(cacheDir: dir))
        defer { close(fd) }
        var replies: [String] = []
        try ControlSocket.exchange(fd: fd, ControlRequest(op: .status)) { replies.append($0.error ?? "") }
        XCTAssertEqual(replies, ["alive"])
    }

    func testAPathTooLongForASocketIsAClearError() throws {
        let dir = try temporaryDirectory(self, "control") + "/" + String(repeating: "d", count: 110)
        XCTAssertEqual(mkdir(dir, 0o700), 0)
        let server = ControlServer(cacheDir: dir) { _, _ in }
        XCTAssertThrowsError(try server.start()) {
            XCTAssertEqual("\($0)", "control socket path too long: \(ControlSocket.path(cacheDir: dir))")
        }
        XCTAssertNil(ControlSocket.connect(cacheDir: dir))
        XCTAssertNil(ControlSocket.connect(cacheDir: "/nonexistent-\(getpid())"), "no socket: no mount")
    }

    func testExchangeSendsOneLineAndSkipsUnreadableReplies() throws {
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        defer { close(pair[0]); close(pair[1]) }
        let good = Array(try JSONEncoder().encode(ControlReply(error: "fine"))) + [0x0A]
        try Syscall.writeAll(pair[1], Array("garbage\n".utf8) + good + Array("{\"error\":".utf8), path: "server side")
        shutdown(pair[1], Int32(SHUT_WR))
        var replies: [String] = []
        try ControlSocket.exchange(fd: pair[0], ControlRequest(op: .status, bucket: "b")) { replies.append($0.error ?? "") }
        XCTAssertEqual(replies, ["fine"], "the garbage line and the unfinished one are skipped")
        shutdown(pair[0], Int32(SHUT_WR))
        let sent = try readAll(pair[1])
        XCTAssertTrue(sent.hasSuffix("\n") && sent.dropLast().split(separator: "\n").count == 1, sent)
        let request = try JSONDecoder().decode(ControlRequest.self, from: Data(sent.utf8))
        XCTAssertEqual(request.op, .status)
        XCTAssertEqual(request.bucket, "b")
    }

    private func readAll(_ fd: Int32) throws -> String {
        var out = [UInt8](), buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try buf.withUnsafeMutableBytes { try Syscall.read(fd, into: $0, path: "control client") }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
