/// The listening side shared by the control socket and the metrics listener.
import Foundation
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A listening stream socket with one thread accepting on it until `stop`.
final class SocketListener: Sendable {
    /// The listening descriptor; -1 once stopped.
    private let fd: Mutex<Int32>

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
        fd = Mutex(s)
    }

    /// Pending connections the kernel queues: both listeners serve a handful of local clients.
    static let backlog: Int32 = 16

    /// Starts the accept thread, named `name`: every connection (close-on-exec) goes to `serve`
    /// on that thread, until `stop` shuts the socket down.
    func start(name: String, serve: @escaping @Sendable (Int32) -> Void) {
        let s = fd.withLock { $0 }
        guard s >= 0 else { return }
        let t = Thread {
            while let c = Syscall.accept(s) { serve(c) }
        }
        t.name = name
        t.start()
    }

    /// Shuts the socket down (the accept thread's `accept` returns and the thread ends) and closes it.
    func stop() {
        fd.withLock { fd in
            guard fd >= 0 else { return }
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
            fd = -1
        }
    }
}
