import ArgumentParser
import Cache
import Foundation
import Mount
import SoakCore

/// `soak status`: what the mount owning a cache directory is doing.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the running mount of a cache directory: lanes, queues, workers, throughput, hit ratio.",
        discussion: "Exit status 1 when no mount owns the cache directory. Creates nothing.")
    @OptionGroup var cacheOptions: CacheOptions
    @Flag(help: "Machine-readable JSON output.") var json = false

    func run() throws {
        let dir = cacheOptions.directory(env: ProcessInfo.processInfo.environment)
        // Only a soak cache's control socket is soak's to talk to.
        try CacheDirectory.requireExisting(dir)
        guard let fd = ControlSocket.connect(cacheDir: dir) else {
            throw RuntimeError("no mount is running on cache \(dir)")
        }
        defer { close(fd) }
        var status: MountStatus?
        try ControlSocket.exchange(fd: fd, ControlRequest(op: .status)) { if let s = $0.status { status = s } }
        guard let s = status else { throw RuntimeError("the mount on \(dir) did not answer") }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(s), as: UTF8.self))
            return
        }
        let e = s.engine
        let reads = s.hits + s.misses
        print("""
            mount:     \(s.source) at \(s.mountpoint) (pid \(s.pid), up \(Int(s.uptimeSeconds)) s)
            workers:   \(e.workers) (target \(e.targetWorkers)), \(e.inflight) fetches in flight
            queues:    urgent \(e.queuedByLane[0]), read-ahead \(e.queuedByLane[1]), bulk \(e.queuedByLane[2]); \(s.pendingBlocks) blocks on their way
            fetched:   \(String(format: "%.1f MB", Double(e.bytes) / 1e6)) at \(String(format: "%.1f MB/s", e.rate / 1e6)); \(e.retries) retries, \(e.throttled) throttled, \(e.failed) failed
            reads:     \(s.hits) hits, \(s.misses) misses\(reads > 0 ? String(format: " (%.1f%% hit ratio)", Double(s.hits) * 100 / Double(reads)) : "")
            cache:     \(String(format: "%.1f MB", Double(s.cachedBytes) / 1e6))
            """)
    }
}
