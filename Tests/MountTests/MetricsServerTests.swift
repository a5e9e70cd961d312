/// The metrics listener scraped over real loopback sockets (bound to port 0): GET answers
/// with the rendered text, anything else with 405, slow or odd clients get an answer and
/// cannot hold the listener, and `stop` closes it.
import Foundation
import SoakCore
import Synchronization
import XCTest
@testable import Mount
#if canImport(Glibc)
import Glibc
#endif

final class MetricsServerTests: XCTestCase {
    /// A server on 127.0.0.1 at a port the kernel picks, rendering `n <scrape number>`;
    /// stopped by the test's teardown.
    private func server() throws -> (MetricsServer, UInt16) {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: a) { dst.copyMemory(from: $0) } }
        let scrapes = Mutex(0)
        let s = try MetricsServer(address: MetricsServer.Address(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in>.size),
                                                                 family: AF_INET), label: "127.0.0.1:0") {
            Array("n \(scrapes.withLock { $0 += 1; return $0 })\n".utf8)
        }
        s.start()
        addTeardownBlock { s.stop() }
        return (s, try XCTUnwrap(s.port))
    }

    private func connect(_ port: UInt16) throws -> Int32 {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(s)
            throw LocalIOError(errno: e, operation: "connect", path: "127.0.0.1:\(port)")
        }
        return s
    }

    /// Sends `request` (then, with `closeWrite`, shuts its sending side) and reads the whole answer.
    private func exchange(_ port: UInt16, _ request: String, closeWrite: Bool = false) throws -> String {
        let s = try connect(port)
        defer { close(s) }
        try Syscall.writeAll(s, Array(request.utf8), path: "metrics client")
        if closeWrite { shutdown(s, Int32(SHUT_WR)) }
        return try readAll(s)
    }

    private func readAll(_ s: Int32) throws -> String {
        var out = [UInt8](), buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try buf.withUnsafeMutableBytes { try Syscall.read(s, into: $0, path: "metrics client") }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func testGETAnswersWithTheTextRenderedForEachScrape() throws {
        let (_, port) = try server()
        let first = try exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(first.hasPrefix("HTTP/1.1 200 OK\r\n"), first)
        XCTAssertTrue(first.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"), first)
        XCTAssertTrue(first.contains("\r\nContent-Length: 4\r\n"), first)
        XCTAssertTrue(first.hasSuffix("\r\n\r\nn 1\n"), first)
        XCTAssertTrue(try exchange(port, "GET / HTTP/1.0\r\n\r\n").hasSuffix("\r\n\r\nn 2\n"), "rendered again, any path")
    }

    func testOtherMethodsAreRefused() throws {
        let (_, port) = try server()
        let r = try exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        XCTAssertTrue(r.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"), r)
        XCTAssertTrue(r.hasSuffix("\r\n\r\nonly GET /metrics\n"), r)
        XCTAssertTrue(try exchange(port, "GET /metrics HTTP/1.1\r\n\r\n").hasSuffix("n 1\n"), "a refused request renders nothing")
    }

    func testARequestEndedByClosingIsAnswered() throws {
        let (_, port) = try server()
        let r = try exchange(port, "GET /metrics", closeWrite: true)
        XCTAssertTrue(r.hasPrefix("HTTP/1.1 200 OK\r\n") && r.hasSuffix("n 1\n"), r)
    }

    func testAnEndlessRequestLineIsCutAndAnswered() throws {
        let (_, port) = try server()
        // Exactly the most the listener reads, with no blank line: it stops reading and answers.
        let r = try exchange(port, "GET /" + String(repeating: "x", count: 16_384 - 5))
        XCTAssertTrue(r.hasPrefix("HTTP/1.1 200 OK\r\n") && r.hasSuffix("n 1\n"), r)
    }

    func testASilentClientDoesNotHoldTheListener() throws {
        let (_, port) = try server()
        let silent = try connect(port)
        defer { close(silent) }
        // Served one at a time: this one waits until the silent client times out, then is answered.
        let r = try exchange(port, "GET /metrics HTTP/1.1\r\n\r\n")
        XCTAssertTrue(r.hasPrefix("HTTP/1.1 200 OK\r\n"), r)
        XCTAssertTrue(try readAll(silent).hasPrefix("HTTP/1.1 405"), "the silent client got an answer to its empty request")
    }

    func testStopClosesTheListener() throws {
        let (s, port) = try server()
        XCTAssertTrue(try exchange(port, "GET / HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        s.stop()
        XCTAssertThrowsError(try connect(port)) { XCTAssertEqual(($0 as? LocalIOError)?.errno, ECONNREFUSED, "\($0)") }
        s.stop()  // twice is harmless
    }

    func testAPortInUseIsAClearError() throws {
        let (_, port) = try server()
        XCTAssertThrowsError(try MetricsServer(address: "127.0.0.1:\(port)") { [] }) {
            XCTAssertTrue($0 is MountError, "\($0)")
            XCTAssertEqual("\($0)", "cannot serve metrics on 127.0.0.1:\(port): \(String(cString: strerror(EADDRINUSE)))")
        }
    }
}
