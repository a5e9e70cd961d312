/// The worker process: `soak __worker`, started by `WorkerPool`.
///
/// It reads one `configure` line, then loops: `curl_multi_poll` waits on its transfers and on
/// stdin at once; new `fetch` orders become transfers (up to `slots` at a time, the rest wait
/// in order); each body chunk is `pwrite`n straight into the destination file at its offset, so
/// nothing is held in memory beyond libcurl's receive buffer. Finished transfers are reported
/// with the contiguous byte count written, which is what makes a retry resumable. A heartbeat
/// `progress` line goes out at least every `heartbeatInterval`.
///
/// The worker dies with its coordinator (PR_SET_PDEATHSIG, and EOF on stdin) and ignores
/// SIGINT/SIGTERM from the terminal's process group: the coordinator decides when it stops.
import CSys
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

public enum Worker {
    /// Heartbeat/progress period: the coordinator's hang detection and progress bar depend on it.
    static let heartbeatInterval = 0.25
    /// Freed heap a worker keeps, and the size below which it allocates from the heap. libcurl
    /// frees its 512 KiB receive buffer after every transfer; glibc gave it back to the kernel
    /// and the next transfer faulted it in again (page faults were 4% of a worker's CPU on
    /// 64 KiB objects). Bounded: it is a few buffers' worth.
    static let heapRetained = 8 * 1024 * 1024

    /// Runs the worker loop on this process's stdin/stdout. Returns the exit code.
    public static func main() -> Int32 {
        #if os(Linux)
        _ = csys_set_parent_death_signal(SIGKILL)
        if getppid() == 1 { return 1 }  // coordinator already gone
        #endif
        signal(SIGINT, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        _ = csys_malloc_retain(Int32(heapRetained), Int32(heapRetained))
        CurlGlobal.initialize()
        var reader = LineBuffer()
        // First line: configuration (blocking read).
        guard let cfgLine = readLineBlocking(&reader),
              case .configure(let config) = try? LineCodec.decode(ToWorker.self, cfgLine) else {
            FileHandle.standardError.write("soak worker: no configuration on stdin\n".data(using: .utf8)!)
            return 2
        }
        let level = Logger.Level(rawValue: config.logLevel) ?? .info
        // A log file the parent opened but this process cannot: stderr rather than no log.
        do { try SoakLogging.bootstrap(level: level, logFile: config.logFile) } catch { SoakLogging.bootstrap(level: level) }
        var logger = Logger(label: "soak.worker")
        logger[metadataKey: "pid"] = "\(getpid())"
        do {
            let w = try WorkerLoop(config: config, logger: logger)
            try w.send(.ready(pid: getpid()))
            try w.flush()
            return w.run(reader: &reader)
        } catch {
            logger.error("worker failed to start: \(error)")
            return 1
        }
    }

    static func readLineBlocking(_ reader: inout LineBuffer) -> ArraySlice<UInt8>? {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            if let line = reader.nextLine() { return line }
            let n = chunk.withUnsafeMutableBytes { p in Syscall.retrying { read(0, p.baseAddress, p.count) } }
            if n <= 0 { return nil }
            chunk.withUnsafeBytes { reader.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }
}
