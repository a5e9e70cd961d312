/// `Syscall`: the EINTR retry, the whole-buffer loops over pipes (which return short reads and
/// writes) and files, and the typed errors they throw.
import Foundation
import SoakCore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class SyscallTests: XCTestCase {
    func testRetryingRepeatsOnlyInterruptedCalls() {
        var calls = 0
        let r = Syscall.retrying { () -> Int in
            calls += 1
            if calls < 4 { errno = EINTR; return -1 }
            return 7
        }
        XCTAssertEqual(r, 7)
        XCTAssertEqual(calls, 4)

        calls = 0
        let failed = Syscall.retrying { () -> Int32 in calls += 1; errno = EBADF; return -1 }
        XCTAssertEqual(failed, -1)
        XCTAssertEqual(errno, EBADF)
        XCTAssertEqual(calls, 1, "other failures are returned at once")
    }

    /// More than a pipe holds, so the writer's writes and the reader's reads both come back short.
    func testWriteAllAndReadAllOverAPipe() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let bytes = (0..<(1 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let w = fds[1]
        let writer = Thread {
            try? Syscall.writeAll(w, bytes, path: "pipe")
            close(w)
        }
        writer.start()
        var got = [UInt8](repeating: 0, count: bytes.count + 100)
        let n = try got.withUnsafeMutableBytes { try Syscall.readAll(fds[0], into: $0, path: "pipe") }
        close(fds[0])
        XCTAssertEqual(n, bytes.count, "reads to the end of the stream, not to the end of the buffer")
        XCTAssertEqual(Array(got[0..<n]), bytes)
    }

    func testPositionedRoundTripAndEndOfFile() throws {
        let path = NSTemporaryDirectory() + "soak-syscall-\(getpid()).bin"
        defer { unlink(path) }
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0) }
        try bytes.withUnsafeBytes { try Syscall.pwriteAll(fd, $0, at: 5_000, path: path) }
        var buf = [UInt8](repeating: 0xFF, count: 8_000)
        let n = try buf.withUnsafeMutableBytes { try Syscall.preadAll(fd, into: $0, at: 9_000, path: path) }
        XCTAssertEqual(n, 6_000, "stops at the end of the file")
        XCTAssertEqual(Array(buf[0..<n]), Array(bytes[4_000...]))
        let hole = try buf.withUnsafeMutableBytes { try Syscall.preadAll(fd, into: $0, at: 0, path: path) }
        XCTAssertEqual(hole, 8_000)
        XCTAssertEqual(Array(buf[0..<5_000]), [UInt8](repeating: 0, count: 5_000))
    }

    func testFailuresThrowErrnoOperationAndPath() {
        var buf = [UInt8](repeating: 0, count: 4)
        XCTAssertThrowsError(try buf.withUnsafeMutableBytes { try Syscall.preadAll(-1, into: $0, at: 0, path: "/x") }) {
            let e = $0 as? LocalIOError
            XCTAssertEqual(e?.errno, EBADF)
            XCTAssertEqual(e?.operation, "pread")
            XCTAssertEqual(e?.path, "/x")
        }
        XCTAssertThrowsError(try Syscall.writeAll(-1, [1, 2, 3], path: "/y")) {
            XCTAssertEqual(($0 as? LocalIOError)?.operation, "write")
        }
    }

    /// A peer that has gone is EPIPE, not a SIGPIPE that kills the process.
    func testSendAllToAClosedPeerThrows() {
        var sv: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &sv), 0)
        close(sv[1])
        defer { close(sv[0]) }
        XCTAssertThrowsError(try [UInt8](repeating: 1, count: 100).withUnsafeBytes {
            try Syscall.sendAll(sv[0], $0, path: "peer")
        }) { XCTAssertEqual(($0 as? LocalIOError)?.errno, EPIPE) }
    }

    func testWaitpidReturnsTheExitStatus() {
        var pid: pid_t = 0
        var args: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup("exit 3"), nil]
        defer { for p in args { free(p) } }
        XCTAssertEqual(posix_spawn(&pid, "/bin/sh", nil, nil, &args, environ), 0)
        let status = Syscall.waitpid(pid)
        XCTAssertEqual(status.map { ($0 >> 8) & 0xff }, 3)
        XCTAssertNil(Syscall.waitpid(pid), "no longer our child")
    }
}
