/// A tiny HTTP/1.1 server on 127.0.0.1 for the credential-source tests: it speaks just enough
/// HTTP for libcurl (one request per connection, Content-Length bodies, `Connection: close`),
/// records every request and answers with a test's handler. Connections are served one at a
/// time on a background thread.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class StubHTTPServer: @unchecked Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        /// Lowercased names.
        var headers: [String: String]
        var body: Data
        var bodyText: String { String(decoding: body, as: UTF8.self) }
        /// The form fields of an `application/x-www-form-urlencoded` body.
        var form: [String: String] {
            var out: [String: String] = [:]
            for pair in bodyText.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
                out[kv[0]] = kv.count > 1 ? kv[1] : ""
            }
            return out
        }
    }

    struct Response: Sendable {
        var status: Int
        var headers: [(String, String)] = []
        var body: Data = Data()

        static func text(_ status: Int, _ s: String, type: String = "text/plain") -> Response {
            Response(status: status, headers: [("Content-Type", type)], body: Data(s.utf8))
        }
    }

    let port: Int
    let host: String
    var url: String { "http://\(host):\(port)" }
    private let fd: Int32
    private let lock = NSLock()
    private var recorded: [Request] = []
    private let handler: @Sendable (Request) -> Response

    var requests: [Request] { lock.withLock { recorded } }

    /// Listens on `host:port` (port 0: any free port).
    init(host: String = "127.0.0.1", port: UInt16 = 0, handler: @escaping @Sendable (Request) -> Response) throws {
        self.handler = handler
        self.host = host
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr(host)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.port = Int(UInt16(bigEndian: addr.sin_port))
        self.fd = fd
        let listener = fd
        let t = Thread { [self] in self.serve(listener) }
        t.start()
    }

    deinit { stop() }

    /// Stops accepting (the serving thread ends at its next accept).
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    private func serve(_ listener: Int32) {
        while true {
            let c = accept(listener, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                close(listener)
                return
            }
            handle(c)
            close(c)
        }
    }

    private func handle(_ c: Int32) {
        var data = Data()
        var buf = [UInt8](repeating: 0, count: 4096)
        var headEnd: Range<Data.Index>? = nil
        while headEnd == nil {
            let n = read(c, &buf, buf.count)
            if n <= 0 { return }
            data.append(contentsOf: buf[0..<n])
            headEnd = data.range(of: Data("\r\n\r\n".utf8))
        }
        let head = String(decoding: data[..<headEnd!.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Data(data[headEnd!.upperBound...])
        let length = Int(headers["content-length"] ?? "0") ?? 0
        while body.count < length {
            let n = read(c, &buf, buf.count)
            if n <= 0 { break }
            body.append(contentsOf: buf[0..<n])
        }
        let request = Request(method: requestLine.count > 0 ? String(requestLine[0]) : "",
                              path: requestLine.count > 1 ? String(requestLine[1]) : "", headers: headers, body: body)
        lock.withLock { recorded.append(request) }
        let r = handler(request)
        var out = "HTTP/1.1 \(r.status) Stub\r\nContent-Length: \(r.body.count)\r\nConnection: close\r\n"
        for (k, v) in r.headers { out += "\(k): \(v)\r\n" }
        out += "\r\n"
        var bytes = Array(out.utf8) + Array(r.body)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(c, $0.baseAddress! + off, $0.count - off) }
            if n <= 0 { return }
            off += n
        }
    }
}
