/// sd_notify(3) by hand: one datagram of `KEY=VALUE` lines to the unix socket named by
/// `$NOTIFY_SOCKET` (a path, or the abstract namespace when it starts with `@`), which is how a
/// `Type=notify` service tells systemd it is ready (`READY=1`), stopping (`STOPPING=1`) or what it
/// is doing (`STATUS=`). Written here rather than linking libsystemd: the protocol is one
/// `sendto`, and the static release binary would otherwise need libsystemd on every machine.
///
/// Sends never block and never raise SIGPIPE: a manager that is not reading must not stall the
/// mount. Only the service's main process may answer systemd, so worker processes never see
/// `NOTIFY_SOCKET` (see `WorkerEnvironment`).
#if canImport(Glibc)
import Glibc
#endif

public struct SystemdNotifier: Sendable {
    /// The socket address as given in `$NOTIFY_SOCKET`.
    public let socket: String

    /// The notifier `environment` asks for, or nil when it names no socket (not under systemd,
    /// or a form this code does not speak, such as `vsock:`).
    public init?(environment: [String: String]) {
        guard let s = environment["NOTIFY_SOCKET"], s.hasPrefix("/") || (s.hasPrefix("@") && s.utf8.count > 1) else {
            return nil
        }
        socket = s
    }

    /// `READY=1`, with a `STATUS=` line when given.
    @discardableResult
    public func ready(status: String? = nil) -> Int32 { send(["READY=1"] + (status.map { ["STATUS=" + $0] } ?? [])) }

    /// `STOPPING=1`, with a `STATUS=` line when given.
    @discardableResult
    public func stopping(status: String? = nil) -> Int32 { send(["STOPPING=1"] + (status.map { ["STATUS=" + $0] } ?? [])) }

    /// Sends `fields` as one message (newline-separated); a field may not hold a newline, so
    /// one is replaced by a space. Returns 0, or the errno of the failure.
    @discardableResult
    public func send(_ fields: [String]) -> Int32 {
        let message = Array(fields.map { $0.replacingNewlines() }.joined(separator: "\n").utf8)
        guard var addr = Self.address(socket) else { return ENAMETOOLONG }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        let sent = message.withUnsafeBytes { body in
            withUnsafePointer(to: &addr.sockaddr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, body.baseAddress, body.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), $0, addr.length)
                }
            }
        }
        return sent == message.count ? 0 : (sent < 0 ? errno : EMSGSIZE)
    }

    /// `sockaddr_un` for a path, or for an abstract name (`@name`: a leading NUL, no terminator,
    /// and a length that counts exactly the name's bytes).
    static func address(_ s: String) -> (sockaddr: sockaddr_un, length: socklen_t)? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(s.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity || (abstract && bytes.count == capacity) else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path) ?? 2
        return (addr, socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1)))
    }
}

private extension String {
    func replacingNewlines() -> String { String(map { $0 == "\n" || $0 == "\r\n" ? " " : $0 }) }
}
