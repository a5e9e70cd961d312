/// CPU, memory, descriptors and start time of a process, read from /proc (Linux), for the
/// conventional Prometheus `process_*` metrics and the `soak_workers_*` sums.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct ProcessStats: Sendable, Equatable {
    public var cpuSeconds: Double
    public var residentBytes: Int64
    public var virtualBytes: Int64
    /// Seconds since the Unix epoch.
    public var startTime: Double
    /// Open descriptors; nil when /proc/PID/fd cannot be listed (another user's process).
    public var openFDs: Int?

    /// Reads `/proc/PID/stat` (nil when the process is gone). `pid` 0 means this process.
    public static func read(pid: pid_t = 0) -> ProcessStats? {
        let dir = pid == 0 ? "/proc/self" : "/proc/\(pid)"
        guard let text = try? String(contentsOfFile: dir + "/stat", encoding: .utf8) else { return nil }
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/fd"))?.count
        return parse(stat: text, openFDs: fds, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))),
                     pageSize: Int64(sysconf(Int32(_SC_PAGESIZE))), bootTime: bootTime)
    }

    /// Parses a `/proc/PID/stat` line. The command name (field 2) may hold spaces and
    /// parentheses, so fields are counted from its last ')'.
    public static func parse(stat: String, openFDs: Int?, ticksPerSecond: Double, pageSize: Int64,
                             bootTime: Double) -> ProcessStats? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        // After ")": field 3 (state) is index 0, so field N is index N - 3.
        let f = stat[stat.index(after: close)...].split(separator: " ")
        guard f.count > 21, let utime = Double(f[11]), let stime = Double(f[12]), let start = Double(f[19]),
              let vsize = Int64(f[20]), let rss = Int64(f[21]), ticksPerSecond > 0 else { return nil }
        return ProcessStats(cpuSeconds: (utime + stime) / ticksPerSecond, residentBytes: rss * pageSize,
                            virtualBytes: vsize, startTime: bootTime + start / ticksPerSecond, openFDs: openFDs)
    }

    /// The parent pid of `/proc/PID/stat` (field 4).
    static func parentPID(stat: String) -> pid_t? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let f = stat[stat.index(after: close)...].split(separator: " ")
        return f.count > 1 ? pid_t(f[1]) : nil
    }

    /// Children of this process whose command line contains `argument` (e.g. the worker
    /// processes, `soak __worker`). From each thread's `children` list when the kernel has
    /// them, else from a scan of /proc for this parent pid.
    public static func children(withArgument argument: String) -> [pid_t] {
        let fm = FileManager.default
        var pids: [pid_t] = []
        if let tasks = try? fm.contentsOfDirectory(atPath: "/proc/self/task"), let first = tasks.first,
           fm.fileExists(atPath: "/proc/self/task/\(first)/children") {
            for t in tasks {
                let list = (try? String(contentsOfFile: "/proc/self/task/\(t)/children", encoding: .utf8)) ?? ""
                pids += list.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
        } else {
            let me = getpid()
            pids = ((try? fm.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name in
                guard let pid = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                      parentPID(stat: stat) == me else { return nil }
                return pid
            }
        }
        return pids.filter { pid in
            guard let cmd = fm.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return cmd.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == argument }
        }
    }

    /// System boot time (the `btime` line of /proc/stat), in seconds since the epoch.
    public static let bootTime: Double = {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }()
}
