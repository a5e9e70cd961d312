/// Helpers shared by the Mount unit tests: Prometheus text read back into samples, captured
/// log lines, and a private temporary directory.
import Foundation
import Logging
import Synchronization
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The samples of a Prometheus text exposition, keyed by `name{labels}` exactly as rendered.
func prometheusSamples(_ bytes: [UInt8]) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        out[String(line[..<space])] = value
    }
    return out
}

/// Log lines with their levels, from any thread.
final class CapturedLog: Sendable {
    private let lines = Mutex<[(Logger.Level, String)]>([])

    var logger: Logger {
        Logger(label: "test") { _ in Handler(sink: self) }
    }

    func at(_ level: Logger.Level) -> [String] { lines.withLock { $0.filter { $0.0 == level }.map(\.1) } }

    private struct Handler: LogHandler {
        let sink: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { sink.lines.withLock { $0.append((event.level, "\(event.message)")) } }
    }
}

/// A new empty directory under the system temp directory, removed with its contents by the
/// test's teardown.
func temporaryDirectory(_ test: XCTestCase, _ label: String) throws -> String {
    let dir = NSTemporaryDirectory() + "soak-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}
