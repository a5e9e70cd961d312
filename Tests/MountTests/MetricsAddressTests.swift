import Foundation
import Mount
import SoakCore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class MetricsAddressTests: XCTestCase {
    func testIPv4() throws {
        let a = try MetricsServer.parse("127.0.0.1:9100")
        XCTAssertEqual(a.family, AF_INET)
        let sin = withUnsafeBytes(of: a.storage) { $0.load(as: sockaddr_in.self) }
        XCTAssertEqual(UInt16(bigEndian: sin.sin_port), 9100)
        XCTAssertEqual(UInt32(bigEndian: sin.sin_addr.s_addr), 0x7F00_0001)
    }

    func testBracketedIPv6() throws {
        let a = try MetricsServer.parse("[::1]:9200")
        XCTAssertEqual(a.family, AF_INET6)
        XCTAssertEqual(Int(a.length), MemoryLayout<sockaddr_in6>.size)
        let sin6 = withUnsafeBytes(of: a.storage) { $0.load(as: sockaddr_in6.self) }
        XCTAssertEqual(UInt16(bigEndian: sin6.sin6_port), 9200)
        let bytes = withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }
        XCTAssertEqual(bytes, Array(repeating: 0, count: 15) + [1])
    }

    func testPortAloneMeansEveryInterface() throws {
        let a = try MetricsServer.parse(":9300")
        XCTAssertEqual(a.family, AF_INET6)
        let sin6 = withUnsafeBytes(of: a.storage) { $0.load(as: sockaddr_in6.self) }
        XCTAssertEqual(UInt16(bigEndian: sin6.sin6_port), 9300)
        XCTAssertEqual(withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }, Array(repeating: 0, count: 16))
    }

    func testBadAddressesAreUsageErrors() {
        for bad in ["nowhere", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "::1:9100", "[::1]", "[::1:9100",
                    "[]:9100", "localhost:9100", "[127.0.0.1]:9100", "1.2.3:9100", ""] {
            XCTAssertThrowsError(try MetricsServer.parse(bad), bad) { XCTAssertTrue($0 is UsageError, "\(bad): \($0)") }
        }
    }

    /// A free TCP port on the IPv6 wildcard (the kernel's pick; taken again at once by the test).
    private func freePort() -> UInt16 {
        let s = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(s) }
        var a = sockaddr_in6()
        a.sin6_family = sa_family_t(AF_INET6)
        var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        return UInt16(bigEndian: a.sin6_port)
    }

    /// GET over `address` (as `parse` takes it); the whole response.
    private func get(_ address: String) throws -> String {
        var a = try MetricsServer.parse(address)
        let s = socket(a.family, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(s) }
        let rc = withUnsafePointer(to: &a.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, a.length) } }
        guard rc == 0 else { return "connect: errno \(errno)" }
        _ = Array("GET /metrics HTTP/1.0\r\n\r\n".utf8).withUnsafeBytes { send(s, $0.baseAddress, $0.count, 0) }
        var out = [UInt8](), buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(s, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func testPortAloneAnswersOverIPv4AndIPv6() throws {
        let port = freePort()
        let server = try MetricsServer(address: ":\(port)") { Array("soak_up 1\n".utf8) }
        server.start()
        defer { server.stop() }
        let v4 = try get("127.0.0.1:\(port)")
        XCTAssertTrue(v4.hasPrefix("HTTP/1.1 200") && v4.hasSuffix("soak_up 1\n"), v4)
        let v6 = try get("[::1]:\(port)")
        XCTAssertTrue(v6.hasPrefix("HTTP/1.1 200") && v6.hasSuffix("soak_up 1\n"), v6)
    }

    func testABracketedIPv6ListenerAnswers() throws {
        let port = freePort()
        let server = try MetricsServer(address: "[::1]:\(port)") { Array("soak_up 1\n".utf8) }
        server.start()
        defer { server.stop() }
        let v6 = try get("[::1]:\(port)")
        XCTAssertTrue(v6.hasPrefix("HTTP/1.1 200"), v6)
    }
}
