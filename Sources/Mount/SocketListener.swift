/// The listening side shared by the control socket and the metrics listener.
import Foundation
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A listening stream socket with one thread accepting on it until `stop`.
///
/// Once started, the accept thread closes the socket, not `stop`: a descriptor number freed
/// while that thread may still call `accept` on it could be reused by a new socket, whose
/// connections the old thread would then take.
final class SocketListener: Sendable {
    private struct State {
        /// The listening descriptor; -1 once stopped.
        var fd: Int32
        /// An accept thread owns the descriptor (and closes it).
        var accepting = false
    }
    private let state: Mutex<State>

    /// A new close-on-exec socket of `family`: `bind` binds it (returning 0, or -1 with errno
    /// set, as bind(2) does), then it listens. Throws with the failing call as the operation.
    init(family: Int32, label: String, bind: (Int32) -> Int32) throws(LocalIOError) {
        let s = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw LocalIOError(errno: errno, operation: "socket", path: label) }
        let bound = bind(s) == 0
        guard bound, Glibc.listen(s, Self.backlog) == 0 else {
            let e = errno
            close(s)
            throw LocalIOError(errno: e, operation: bound ? "listen" : "bind", path: label)
        }
        state = Mutex(State(fd: s))
    }

    /// Pending connections the kernel queues: both listeners serve a handful of local clients.
    static let backlog: Int32 = 16

    /// Starts the accept thread, named `name`: every connection (close-on-exec) goes to `serve`
    /// on that thread, until `stop` shuts the socket down. Once only.
    func start(name: String, serve: @escaping @Sendable (Int32) -> Void) {
        let s = state.withLock { st -> Int32 in
            guard st.fd >= 0, !st.accepting else { return -1 }
            st.accepting = true
            return st.fd
        }
        guard s >= 0 else { return }
        let t = Thread {
            while let c = Syscall.accept(s) { serve(c) }
            close(s)  // shut down: no `accept` on this number can follow
        }
        t.name = name
        t.start()
    }

    /// The local port of an IPv4 or IPv6 listener; nil for other families, or once stopped.
    var port: UInt16? {
        state.withLock { st -> UInt16? in
            let s = st.fd
            guard s >= 0 else { return nil }
            var a = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let rc = withUnsafeMutablePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) }
            }
            guard rc == 0 else { return nil }
            switch Int32(a.ss_family) {
            case AF_INET: return withUnsafeBytes(of: a) { UInt16(bigEndian: $0.load(as: sockaddr_in.self).sin_port) }
            case AF_INET6: return withUnsafeBytes(of: a) { UInt16(bigEndian: $0.load(as: sockaddr_in6.self).sin6_port) }
            default: return nil
            }
        }
    }

    /// Shuts the socket down: the accept thread's `accept` returns, and the thread closes the
    /// socket once done with the connection it may be serving (`stop` closes it if never started).
    func stop() {
        state.withLock { st in
            guard st.fd >= 0 else { return }
            shutdown(st.fd, Int32(SHUT_RDWR))
            if !st.accepting { close(st.fd) }
            st.fd = -1
        }
    }
}
