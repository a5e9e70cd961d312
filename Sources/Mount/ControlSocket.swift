/// The running mount's control socket, `CACHE_DIR/control.sock` (mode 0600): how `soak status`
/// and `soak prewarm` reach the mount that owns a cache directory instead of starting a second
/// scheduler and worker pool.
///
/// Protocol: the client sends one JSON `ControlRequest` line; the server answers with JSON lines
/// (`ControlReply`) and closes. A client that goes away (Ctrl-C) stops what it asked for.
import Cache
import Engine
import Foundation
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct ControlRequest: Codable, Sendable {
    public enum Op: String, Codable, Sendable { case status, prewarm }
    public var op: Op
    public var bucket: String?
    public var prefix: String?
    public var rules: [FilterRule]?
    public var shard: String?
    public init(op: Op, bucket: String? = nil, prefix: String? = nil, rules: [FilterRule]? = nil, shard: String? = nil) {
        self.op = op; self.bucket = bucket; self.prefix = prefix; self.rules = rules; self.shard = shard
    }
}

/// What the mount reports about itself.
public struct MountStatus: Codable, Sendable {
    public var source: String
    public var mountpoint: String
    public var pid: Int32
    public var uptimeSeconds: Double
    public var engine: EngineStats
    /// Blocks being fetched now.
    public var pendingBlocks: Int
    public var hits: Int64
    public var misses: Int64
    public var cachedBytes: Int64
}

public struct ControlReply: Codable, Sendable {
    public var status: MountStatus?
    public var progress: DownloadProgress?
    public var summary: PrewarmSummary?
    public var error: String?
    public init(status: MountStatus? = nil, progress: DownloadProgress? = nil, summary: PrewarmSummary? = nil,
                error: String? = nil) {
        self.status = status; self.progress = progress; self.summary = summary; self.error = error
    }
}

public enum ControlSocket {
    public static func path(cacheDir: String) -> String { cacheDir + "/control.sock" }

    static func address(_ path: String) -> sockaddr_un? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
            p[bytes.count] = 0
        }
        return addr
    }

    /// Connects to the mount owning `cacheDir`, or nil when none answers (no socket, or a
    /// socket left by a mount that died).
    public static func connect(cacheDir: String) -> Int32? {
        let path = path(cacheDir: cacheDir)
        guard var addr = address(path), access(path, F_OK) == 0 else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 { close(fd); return nil }
        return fd
    }

    /// Sends one request and calls `onReply` for every reply line until the server closes.
    public static func exchange(fd: Int32, _ request: ControlRequest, onReply: (ControlReply) -> Void) throws {
        var line = try JSONEncoder().encode(request)
        line.append(0x0A)
        try Syscall.writeAll(fd, [UInt8](line), path: "control socket")
        var buffer = LineBuffer()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { (try? Syscall.read(fd, into: $0, path: "control socket")) ?? 0 }
            if n == 0 { break }
            chunk.withUnsafeBytes { buffer.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            while let l = buffer.nextLine() {
                if let r = try? JSONDecoder().decode(ControlReply.self, from: Data(l)) { onReply(r) }
            }
        }
    }
}

/// The server side, run by the mount.
public final class ControlServer: Sendable {
    public typealias Handler = @Sendable (ControlRequest, _ send: (ControlReply) -> Bool) -> Void
    let path: String
    /// Set by `start`, taken by `stop`.
    private let listener = Mutex<SocketListener?>(nil)
    private let handler: Handler

    public init(cacheDir: String, handler: @escaping Handler) {
        self.path = ControlSocket.path(cacheDir: cacheDir)
        self.handler = handler
    }

    public func start() throws {
        guard var addr = ControlSocket.address(path) else { throw MountError("control socket path too long: \(path)") }
        unlink(path)  // left by a mount that died; a live one was detected before we got here
        let socket: SocketListener
        do {
            socket = try SocketListener(family: AF_UNIX, label: path) { fd in
                let old = umask(0o177)  // the socket is created 0600: only this user talks to the mount
                defer { umask(old) }
                return withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
            }
        } catch {
            throw MountError("control socket \(path): \(String(cString: strerror(error.errno)))")
        }
        chmod(path, 0o600)
        listener.withLock { $0 = socket }
        // One thread per client: a prewarm request streams progress for as long as it runs.
        socket.start(name: "soak-control") { [self] c in
            Thread { [self] in serve(c) }.start()
        }
    }

    public func stop() {
        listener.withLock { $0.take() }?.stop()
        unlink(path)
    }

    private func serve(_ c: Int32) {
        defer { close(c) }
        var buffer = LineBuffer()
        var chunk = [UInt8](repeating: 0, count: 4096)
        var request: ControlRequest?
        while request == nil {
            let n = chunk.withUnsafeMutableBytes { (try? Syscall.read(c, into: $0, path: "control socket")) ?? 0 }
            if n == 0 { return }
            chunk.withUnsafeBytes { buffer.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            // Only a chunk holding a newline can end the line: what came before is not scanned again.
            if chunk[0..<n].contains(0x0A), let l = buffer.nextLine() {
                guard let r = try? JSONDecoder().decode(ControlRequest.self, from: Data(l)) else {
                    _ = Self.send(c, ControlReply(error: "unreadable request"))
                    return
                }
                request = r
            }
            if buffer.pending > 1 << 20 { return }
        }
        handler(request!) { Self.send(c, $0) }
    }

    /// One reply line; false once the client is gone.
    static func send(_ c: Int32, _ reply: ControlReply) -> Bool {
        guard var data = try? JSONEncoder().encode(reply) else { return false }
        data.append(0x0A)
        return data.withUnsafeBytes { (try? Syscall.sendAll(c, $0, path: "control socket")) != nil }
    }
}
