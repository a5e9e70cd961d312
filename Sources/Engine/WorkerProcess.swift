/// One worker OS process as the coordinator sees it: pid, the two pipe ends, the orders it
/// holds and when it was last heard from.
import CSys
import Foundation
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

final class WorkerProcess {
    let pid: pid_t
    /// Coordinator writes orders here (the worker's stdin).
    private(set) var toFD: Int32
    /// Names `toFD` in a failed write's error; built once, not on every flush.
    private let pipePath: String
    /// Coordinator reads reports here (the worker's stdout).
    private(set) var fromFD: Int32
    var reader = LineBuffer()
    /// Order id → bytes reported written so far.
    var inflight: [Int: Int64] = [:]
    var lastHeard: Double
    /// No new work; shut down once idle.
    var retiring = false
    var ready = false
    var exited = false

    /// Reports are read through this, allocated once: a fresh zeroed 64 KiB array per read
    /// was the engine thread's largest `memset`.
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    deinit { readBuffer.deallocate() }

    private init(pid: pid_t, toFD: Int32, fromFD: Int32) {
        self.pid = pid; self.toFD = toFD; self.fromFD = fromFD
        self.pipePath = "pipe fd \(toFD)"
        self.lastHeard = MonotonicTime.now()
    }

    /// Starts `executable __worker` with pipes on its stdin/stdout; stderr is inherited. Its
    /// environment is `WorkerEnvironment`'s allowlist of ours; credentials go in the `configure`
    /// message.
    static func spawn(executable: String, config: WorkerConfig) throws -> WorkerProcess {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard csys_pipe2(&toChild, O_CLOEXEC) == 0 else { throw LocalIOError(errno: errno, operation: "pipe2", path: "worker stdin") }
        guard csys_pipe2(&fromChild, O_CLOEXEC) == 0 else {
            close(toChild[0]); close(toChild[1])
            throw LocalIOError(errno: errno, operation: "pipe2", path: "worker stdout")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears FD_CLOEXEC on the target, so only 0/1/2 survive into the child.
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        let args = [executable, "__worker"]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var envp: [UnsafeMutablePointer<CChar>?] = WorkerEnvironment.build(from: WorkerEnvironment.current()).map { entry in
            let c = UnsafeMutablePointer<CChar>.allocate(capacity: entry.count + 1)
            entry.withUnsafeBytes { UnsafeMutableRawPointer(c).copyMemory(from: $0.baseAddress!, byteCount: entry.count) }
            c[entry.count] = 0
            return c
        } + [nil]
        defer { for p in envp { p?.deallocate() } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, &argv, &envp)
        close(toChild[0]); close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1]); close(fromChild[0])
            throw LocalIOError(errno: rc, operation: "spawn worker", path: executable)
        }
        _ = fcntl(fromChild[0], F_SETFL, fcntl(fromChild[0], F_GETFL) | O_NONBLOCK)
        let w = WorkerProcess(pid: pid, toFD: toChild[1], fromFD: fromChild[0])
        try w.send(.configure(config))
        return w
    }

    func send(_ m: ToWorker) throws {
        guard toFD >= 0 else { throw LocalIOError(errno: EPIPE, operation: "send to worker", path: "pid \(pid)") }
        try Syscall.writeAll(toFD, LineCodec.encode(m), path: pipePath)
    }

    /// Orders queued by `dispatch`, sent together by `flush` (one write per worker per round).
    var pending: [UInt8] = []

    func queue(_ m: ToWorker) throws { pending += try LineCodec.encode(m) }

    func flush() throws {
        guard !pending.isEmpty else { return }
        defer { pending.removeAll(keepingCapacity: true) }
        guard toFD >= 0 else { throw LocalIOError(errno: EPIPE, operation: "send to worker", path: "pid \(pid)") }
        try Syscall.writeAll(toFD, pending, path: pipePath)
    }

    /// Reads what is available. Returns false at EOF (the worker is gone).
    func readAvailable() -> Bool {
        while true {
            let n = Syscall.retrying { read(fromFD, readBuffer.baseAddress, readBuffer.count) }
            if n > 0 { reader.append(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n])); continue }
            if n == 0 { return false }
            return errno == EAGAIN || errno == EWOULDBLOCK
        }
    }

    /// Closes our end of its stdin: a worker exits at once when its stdin reaches EOF.
    func closeInput() {
        if toFD >= 0 { close(toFD); toFD = -1 }
    }

    /// Kills (if `force`) and reaps the process, closing both pipes. Waits at most `grace` seconds
    /// for a voluntary exit before SIGKILL.
    func terminate(force: Bool, grace: Double = 2) {
        closeInput()
        if force { kill(pid, SIGKILL) }
        let deadline = MonotonicTime.now() + grace
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { break }
            if MonotonicTime.now() > deadline { kill(pid, SIGKILL); _ = waitpid(pid, &status, 0); break }
            usleep(5_000)
        }
        if fromFD >= 0 { close(fromFD); fromFD = -1 }
        exited = true
    }
}
