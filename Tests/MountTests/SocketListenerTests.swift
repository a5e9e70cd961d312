/// The listener under the control socket and the metrics server: a failed bind names the
/// call, and a stopped listener's accept thread never takes connections meant for a later
/// socket that got the same descriptor number.
import Foundation
import SoakCore
import Synchronization
import XCTest
@testable import Mount
#if canImport(Glibc)
import Glibc
#endif

final class SocketListenerTests: XCTestCase {
    private func unixAddress(_ path: String) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        return addr
    }

    private func listener(_ path: String) throws -> SocketListener {
        var addr = unixAddress(path)
        return try SocketListener(family: AF_UNIX, label: path) { s in
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
    }

    private func connect(_ path: String) throws -> Int32 {
        var addr = unixAddress(path)
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(s)
            throw LocalIOError(errno: e, operation: "connect", path: path)
        }
        return s
    }

    /// Waits (at most 10 s) until `condition` holds.
    private func eventually(_ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(10)
        while !condition() && Date() < deadline { usleep(1_000) }
    }

    func testABindFailureNamesTheCall() {
        XCTAssertThrowsError(try SocketListener(family: AF_UNIX, label: "here") { _ in errno = EADDRINUSE; return -1 }) {
            let e = $0 as? LocalIOError
            XCTAssertEqual(e?.operation, "bind")
            XCTAssertEqual(e?.errno, EADDRINUSE)
            XCTAssertEqual(e?.path, "here")
        }
    }

    func testAStoppedListenerNeverServesALaterSocket() throws {
        let dir = try temporaryDirectory(self, "listener")
        let served = Mutex<[String]>([])
        let release = DispatchSemaphore(value: 0)
        let a = try listener(dir + "/a")
        a.start(name: "test-a") { c in
            served.withLock { $0.append("a") }
            release.wait()  // busy serving while the listener is stopped
            close(c)
        }
        let first = try connect(dir + "/a")
        defer { close(first) }
        eventually { served.withLock { $0 } == ["a"] }
        a.stop()
        XCTAssertEqual(a.port, nil)

        // A new socket, most likely on the number `a` had; `a`'s thread then finishes serving.
        let b = try listener(dir + "/b")
        b.start(name: "test-b") { c in
            served.withLock { $0.append("b") }
            close(c)
        }
        defer { b.stop() }
        release.signal()
        usleep(50_000)  // lets `a`'s thread go back to its accept, where a stolen connection would go
        for i in 0..<5 {
            let c = try connect(dir + "/b")
            eventually { served.withLock { $0.count } == 2 + i }
            close(c)
        }
        XCTAssertEqual(served.withLock { $0 }, ["a", "b", "b", "b", "b", "b"])
        XCTAssertThrowsError(try connect(dir + "/a")) { XCTAssertEqual(($0 as? LocalIOError)?.errno, ECONNREFUSED) }
    }
}
