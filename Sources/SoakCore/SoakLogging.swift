/// Logging: swift-log to stderr (or `--log-file`), one line per event, level from `--log-level`.
///
/// A line is `2026-12-07T21:00:00.123Z soak: warning: message [key=value]`: an RFC 3339 UTC
/// timestamp with milliseconds first (lines sort and merge by time), then the `soak: LEVEL:`
/// prefix scripts match after it. The one-line fatal error main.swift prints when a command
/// ends (`soak: error: …`) is the command's verdict, not a log line, and has no timestamp.
///
/// Messages never include credentials: request headers are not logged at any level, and
/// `Credentials.description` is redacted.
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

public struct StderrLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String

    public init(label: String, level: Logger.Level) { self.label = label; self.logLevel = level }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "soak: \(event.level): \(event.message)"
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        if !merged.isEmpty {
            line += " [" + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "]"
        }
        SoakLogging.write(line)
    }
}

public enum SoakLogging {
    /// Where log lines go: stderr, or the `--log-file` descriptor. Set once by `bootstrap`
    /// before any thread logs; written with one write(2) per line (O_APPEND keeps lines whole).
    nonisolated(unsafe) private static var fd: Int32 = 2

    /// Installs the handler for the whole process. Call once, first thing. With `logFile`,
    /// lines are appended to that file (created 0600: logs name keys and paths) instead of stderr.
    public static func bootstrap(level: Logger.Level, logFile: String?) throws(UsageError) {
        if let logFile {
            let f = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard f >= 0 else {
                throw UsageError("cannot open --log-file \(logFile): \(String(cString: strerror(errno)))")
            }
            fd = f
        }
        bootstrap(level: level)
    }

    /// Installs the stderr handler (worker processes, commands without `--log-file`).
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { StderrLogHandler(label: $0, level: level) }
    }

    /// Writes one timestamped line (`message` without the timestamp or newline) to the log,
    /// whatever the level: progress lines use this too.
    public static func write(_ message: String, at date: Date = Date()) {
        let line = timestamp(date) + " " + message + "\n"
        // A log that cannot be written must not stop the run.
        try? Syscall.writeAll(fd, Array(line.utf8), path: "log")
    }

    /// RFC 3339 in UTC with milliseconds: `2026-12-07T21:00:00.123Z`.
    public static func timestamp(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var secs = time_t(ms / 1000)
        var tm = tm()
        gmtime_r(&secs, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1,
                      Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), Int(ms % 1000))
    }

    /// A log line without its leading timestamp (for showing a mount log's last line as is).
    public static func strippingTimestamp(_ line: String) -> String {
        let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 24, parts[0].hasSuffix("Z"), parts[0].dropFirst(10).first == "T" else {
            return line
        }
        return String(parts[1])
    }

    public static func parseLevel(_ s: String) throws(UsageError) -> Logger.Level {
        switch s.lowercased() {
        case "trace": return .trace
        case "debug": return .debug
        case "info": return .info
        case "notice": return .notice
        case "warning", "warn": return .warning
        case "error": return .error
        case "critical": return .critical
        default: throw UsageError("invalid --log-level '\(s)': use debug, info, warning or error")
        }
    }
}
