/// The HTTP side of `--metrics-address`: a minimal listener on its own thread.
import Foundation
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.0-style listener: any GET answers with `render()` as Prometheus text.
public final class MetricsServer: Sendable {
    private let listener: SocketListener
    private let render: @Sendable () -> [UInt8]

    /// A parsed `--metrics-address`: the socket address to bind and its family.
    public struct Address: Sendable {
        public var storage: sockaddr_storage
        public var length: socklen_t
        public var family: Int32
    }

    /// `HOST:PORT`: an IPv4 host (`127.0.0.1:9100`), a bracketed IPv6 host (`[::1]:9100`), or
    /// no host (`:9100`: every interface, IPv4 and IPv6). Host names are not resolved.
    public static func parse(_ address: String) throws -> Address {
        let usage = "invalid --metrics-address '\(address)': expected HOST:PORT, e.g. 127.0.0.1:9100, [::1]:9100 or :9100"
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]),
              port > 0 else { throw UsageError(usage) }
        var host = String(address[..<colon])
        var storage = sockaddr_storage()
        if host.hasPrefix("[") || host.isEmpty {
            if host.hasPrefix("[") {
                guard host.hasSuffix("]"), host.count > 2 else { throw UsageError(usage) }
                host = String(host.dropFirst().dropLast())
            } else {
                host = "::"
            }
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else {
                throw UsageError("invalid --metrics-address '\(address)': '\(host)' is not an IPv6 address")
            }
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: a) { dst.copyMemory(from: $0) } }
            return Address(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in6>.size), family: AF_INET6)
        }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else {
            throw UsageError("invalid --metrics-address '\(address)': '\(host)' is not an IPv4 address (IPv6 goes in brackets)")
        }
        withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: a) { dst.copyMemory(from: $0) } }
        return Address(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in>.size), family: AF_INET)
    }

    /// `address` as `parse` takes it. `:PORT` binds IPv6 with IPV6_V6ONLY off, so IPv4 clients
    /// reach it too.
    public convenience init(address: String, render: @escaping @Sendable () -> [UInt8]) throws {
        try self.init(address: Self.parse(address), label: address, render: render)
    }

    /// Binds a parsed address (port 0: the kernel picks one, see `port`); `label` names it in errors.
    init(address: Address, label: String, render: @escaping @Sendable () -> [UInt8]) throws {
        self.render = render
        var addr = address
        do {
            listener = try SocketListener(family: addr.family, label: label) { s in
                var one: Int32 = 1, zero: Int32 = 0
                setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                if addr.family == AF_INET6 { setsockopt(s, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size)) }
                return withUnsafePointer(to: &addr.storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, addr.length) }
                }
            }
        } catch {
            throw MountError("cannot serve metrics on \(label): \(String(cString: strerror(error.errno)))")
        }
    }

    /// The port listened on; nil once stopped.
    var port: UInt16? { listener.port }

    /// Serves one scrape at a time, on the accept thread.
    public func start() {
        let render = render
        listener.start(name: "soak-metrics") { Self.serve($0, render) }
    }

    public func stop() { listener.stop() }

    private static func serve(_ c: Int32, _ render: @Sendable () -> [UInt8]) {
        defer { close(c) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 2048)
        while request.count < 16_384 {
            // A client silent for SO_RCVTIMEO ends the request (EAGAIN).
            let n = chunk.withUnsafeMutableBytes { (try? Syscall.read(c, into: $0, path: "metrics connection")) ?? 0 }
            if n == 0 { break }
            request += chunk[0..<n]
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
        }
        let ok = request.starts(with: Array("GET ".utf8))
        let body = ok ? render() : Array("only GET /metrics\n".utf8)
        let head = "HTTP/1.1 \(ok ? "200 OK" : "405 Method Not Allowed")\r\nContent-Type: text/plain; version=0.0.4\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let out = Array(head.utf8) + body
        _ = out.withUnsafeBytes { try? Syscall.sendAll(c, $0, path: "metrics connection") }
    }
}
