/// The control socket end to end in one process: request line in, reply lines out, and `stop`
/// ending the accept thread's service (the listener shared with the metrics server).
import Foundation
import Mount
import SoakCore
import XCTest
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
}
