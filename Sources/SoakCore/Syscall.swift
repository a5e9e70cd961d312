#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one place soak retries EINTR. A call a signal can interrupt goes through `retrying`, and
/// the whole-buffer loops (read, pread, write, pwrite, send) are written once here on top of it;
/// failures throw `LocalIOError` (errno, operation, path).
///
/// A project helper rather than swift-system: swift-system's `FileDescriptor` covers read, write
/// and their positioned forms, but not poll, accept, send, waitpid or nanosleep, which soak also
/// retries, and its `Errno` carries no operation or path for the error message.
public enum Syscall {
    /// Calls `call` again for as long as it fails with EINTR; returns its result (negative with
    /// errno set on any other failure).
    @inlinable
    public static func retrying<T: SignedInteger>(_ call: () -> T) -> T {
        while true {
            let r = call()
            if r < 0 && errno == EINTR { continue }
            return r
        }
    }

    /// One `read` (retried on EINTR): the bytes read, 0 at end of file.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String)
        throws(LocalIOError) -> Int {
        guard buffer.count > 0 else { return 0 }
        let n = retrying { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        guard n >= 0 else { throw LocalIOError(errno: errno, operation: "read", path: path) }
        return n
    }

    /// Reads until `buffer` is full or the end of the file: the bytes read.
    public static func readAll(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String)
        throws(LocalIOError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = retrying { Glibc.read(fd, buffer.baseAddress! + done, buffer.count - done) }
            guard n >= 0 else { throw LocalIOError(errno: errno, operation: "read", path: path) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads from `offset` until `buffer` is full or the end of the file: the bytes read.
    public static func preadAll(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64,
                                path: String) throws(LocalIOError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = retrying { pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done)) }
            guard n >= 0 else { throw LocalIOError(errno: errno, operation: "pread", path: path) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `bytes`. A write that makes no progress fails with EIO rather than spinning.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(LocalIOError) {
        var done = 0
        while done < bytes.count {
            let n = retrying { Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done) }
            guard n > 0 else { throw LocalIOError(errno: n < 0 ? errno : EIO, operation: "write", path: path) }
            done += n
        }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(LocalIOError) {
        // `withUnsafeBytes` rethrows untyped: carry the typed error out by hand.
        var failure: LocalIOError?
        bytes.withUnsafeBytes { p in
            do throws(LocalIOError) { try writeAll(fd, p, path: path) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Writes all of `bytes` at `offset`.
    public static func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64,
                                 path: String) throws(LocalIOError) {
        var done = 0
        while done < bytes.count {
            let n = retrying { pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done)) }
            guard n > 0 else { throw LocalIOError(errno: n < 0 ? errno : EIO, operation: "pwrite", path: path) }
            done += n
        }
    }

    /// Sends all of `bytes` on a socket, without SIGPIPE when the peer has gone (EPIPE instead).
    public static func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(LocalIOError) {
        var done = 0
        while done < bytes.count {
            let n = retrying { send(fd, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw LocalIOError(errno: n < 0 ? errno : EIO, operation: "send", path: path) }
            done += n
        }
    }

    /// Accepts one connection on a listening socket, close-on-exec; nil once the socket is shut
    /// down or closed (or on any other failure).
    public static func accept(_ fd: Int32) -> Int32? {
        let c = retrying { Glibc.accept(fd, nil, nil) }
        guard c >= 0 else { return nil }
        _ = fcntl(c, F_SETFD, FD_CLOEXEC)
        return c
    }

    /// Waits for child `pid` to end: its wait status, or nil if it is not our child.
    public static func waitpid(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        return retrying { Glibc.waitpid(pid, &status, 0) } < 0 ? nil : status
    }

    /// Sleeps the whole `request`: after a signal, the time that was left.
    public static func sleep(_ request: timespec) {
        var request = request
        var remaining = timespec()
        while nanosleep(&request, &remaining) == -1, errno == EINTR {
            request = remaining
        }
    }
}
