/// Logging: swift-log to stderr, one line per event, level from `--log-level`.
///
/// Messages never include credentials: request headers are not logged at any level, and
/// `Credentials.description` is redacted.
import Foundation
import Logging

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
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

public enum SoakLogging {
    /// Installs the stderr handler for the whole process. Call once, first thing.
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { StderrLogHandler(label: $0, level: level) }
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
