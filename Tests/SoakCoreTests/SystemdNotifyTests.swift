import Foundation
import XCTest
@testable import SoakCore
#if canImport(Glibc)
import Glibc
#endif

/// sd_notify by hand: the message reaches a datagram socket bound at a path and in the abstract
/// namespace, as systemd's listener would read it; what is not a socket address is refused.
final class SystemdNotifyTests: XCTestCase {
    /// A bound datagram socket; `receive` returns one message or nil after `timeout`.
    final class Listener {
        let fd: Int32
        init(address: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0, var a = SystemdNotifier.address(address) else { throw POSIXError(.EINVAL) }
            let rc = withUnsafePointer(to: &a.sockaddr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, a.length) }
            }
            guard rc == 0 else { close(fd); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
        }
        deinit { close(fd) }
        func receive(timeout: Int32 = 2000) -> String? {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, timeout) == 1 else { return nil }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buf, buf.count, 0)
            return n < 0 ? nil : String(decoding: buf[..<n], as: UTF8.self)
        }
    }

    func testReadyStoppingAndStatusReachASocketAtAPath() throws {
        let dir = NSTemporaryDirectory() + "soak-notify-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/notify"
        let listener = try Listener(address: path)
        let n = try XCTUnwrap(SystemdNotifier(environment: ["NOTIFY_SOCKET": path]))
        XCTAssertEqual(n.ready(status: "mounted s3://b/p at /mnt"), 0)
        XCTAssertEqual(listener.receive(), "READY=1\nSTATUS=mounted s3://b/p at /mnt")
        XCTAssertEqual(n.stopping(), 0)
        XCTAssertEqual(listener.receive(), "STOPPING=1")
        // A newline inside a field would start a field of its own: it becomes a space.
        XCTAssertEqual(n.send(["STATUS=two\nlines"]), 0)
        XCTAssertEqual(listener.receive(), "STATUS=two lines")
        XCTAssertNil(listener.receive(timeout: 100), "one datagram per message")
    }

    func testAbstractNamespaceSocket() throws {
        let name = "@soak-notify-test-\(UUID().uuidString)"
        let listener = try Listener(address: name)
        let n = try XCTUnwrap(SystemdNotifier(environment: ["NOTIFY_SOCKET": name]))
        XCTAssertEqual(n.ready(), 0)
        XCTAssertEqual(listener.receive(), "READY=1")
        // The length counts the name exactly: a listener on a longer name hears nothing.
        let longer = try Listener(address: name + "x")
        XCTAssertEqual(n.stopping(), 0)
        XCTAssertEqual(listener.receive(), "STOPPING=1")
        XCTAssertNil(longer.receive(timeout: 100))
    }

    func testNoSocketOrAnUnusableOneIsNoNotifier() {
        for value in [nil, "", "@", "relative/path", "vsock:2:1234"] {
            let env = value.map { ["NOTIFY_SOCKET": $0] } ?? [:]
            XCTAssertNil(SystemdNotifier(environment: env), "\(value ?? "unset")")
        }
        // A path too long for sockaddr_un, or one nobody listens on: an errno, never a crash or a wait.
        let long = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)])
        XCTAssertEqual(long?.ready(), ENAMETOOLONG)
        let nobody = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/soak-notify"])
        XCTAssertEqual(nobody?.ready(), ENOENT)
    }
}
