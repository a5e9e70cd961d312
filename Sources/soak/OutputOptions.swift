import ArgumentParser
import Engine
import Foundation
import Logging
import S3
import SoakCore

/// Output controls of `download` and `prewarm`: what goes to stdout and stderr, and whether
/// anything is fetched at all.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object with the outcome on stdout at the end; nothing else goes to stdout.") var json = false
    @Flag(help: "Errors only: no progress, summary or warnings on stderr.") var quiet = false
    @Flag(name: .customLong("no-progress"), help: "No progress bar or progress lines.") var noProgress = false
    @Flag(help: "List what would be fetched (size and key, one object a line, or in --json) and write nothing.") var dryrun = false

    /// The log level in effect: `--quiet` raises it to errors.
    func level(_ s3: S3Options) throws -> Logger.Level {
        let level = try SoakLogging.parseLevel(s3.logLevel)
        return quiet ? max(level, .error) : level
    }

    /// Bootstraps logging (level and `--log-file`) for the command.
    func bootstrap(_ s3: S3Options) throws -> Logger.Level {
        let level = try level(s3)
        try SoakLogging.bootstrap(level: level, logFile: s3.logFile)
        return level
    }

    var showsProgress: Bool { !quiet && !noProgress }
    var showsSummary: Bool { !quiet }

    /// `--quiet`'s whole output for a run that went through: one error line per failed object
    /// (the summary prints them otherwise).
    func printFailures(_ failures: [DownloadFailure]) {
        for f in failures.prefix(Self.failureLines) { FileHandle.standardError.write(Data("soak: error: \(f)\n".utf8)) }
        if failures.count > Self.failureLines {
            FileHandle.standardError.write(Data("soak: error: … and \(failures.count - Self.failureLines) more failed\n".utf8))
        }
    }

    /// As many failure lines as the summary shows: enough to act on, bounded for huge runs.
    static let failureLines = 50

    /// Writes `report` as one line of JSON on stdout when `--json` is on.
    func emit(_ report: RunReport) {
        guard json else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(report) else { return }
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}

/// The `--json` outcome of a download or prewarm run (README, "Machine-readable output").
struct RunReport: Encodable {
    struct Objects: Encodable {
        var listed: Int
        var selected: Int
        /// Fetched by this run (downloaded, or filled into the cache).
        var done: Int
        /// Already complete before this run (up to date in DEST, or already cached).
        var skipped: Int
        var failed: Int
    }
    struct Bytes: Encodable {
        /// Size of every selected object.
        var selected: Int64
        /// Bytes fetched from S3 by this run.
        var fetched: Int64
    }
    struct Entry: Encodable { var key: String; var size: Int64 }

    var command: String
    var source: String
    var dryrun = false
    var objects: Objects
    var bytes: Bytes
    var failures: [DownloadFailure]
    var seconds: Double
    var interrupted = false
    /// The exit code the run ends with (README, "Exit status").
    var exitStatus: Int32
    /// `--dryrun` only: what would be fetched.
    var wouldFetch: [Entry]?

    enum CodingKeys: String, CodingKey {
        case command, source, dryrun, objects, bytes, failures, seconds, interrupted
        case exitStatus = "exit_status", wouldFetch = "would_fetch"
    }

    /// The code a finished run exits with: interrupted, else partial when any object failed.
    static func exitStatus(failures: Int, signal: Int32?) -> Int32 {
        if let signal { return ExitStatus.interrupted(signal) }
        return failures > 0 ? ExitStatus.partial : ExitStatus.success
    }
}

/// `--dryrun`: lists the prefix and shows the selection, writing nothing and starting no worker.
enum DryRun {
    static func run(command: String, uri: S3URI, store: ObjectStore, retry: RetryPolicy, logger: Logger,
                    output: OutputOptions, selects: (ObjectInfo, String) -> Bool) throws -> Int32 {
        let t0 = MonotonicTime.now()
        var listed = 0
        var entries: [RunReport.Entry] = []
        var bytes: Int64 = 0
        _ = try ListingPager.run(store: store, bucket: uri.bucket, prefix: uri.prefix, retry: retry, logger: logger) { page in
            for o in page.objects {
                listed += 1
                guard let rel = KeyFilter.relativeKey(o.key, prefix: uri.prefix), !o.key.hasSuffix("/"),
                      selects(o, rel) else { continue }
                entries.append(.init(key: o.key, size: o.size))
                bytes += o.size
                if !output.json {
                    FileHandle.standardOutput.write(Data("\(o.size)\t\(PathError.printable(o.key))\n".utf8))
                }
            }
        }
        EmptySelection.check(selected: entries.count, failures: 0, interrupted: false, uri: uri, listed: listed, logger: logger)
        if output.showsSummary {
            FileHandle.standardError.write(Data(String(format: "%@: dry run: %d objects selected of %d listed, %.1f MB; nothing fetched\n",
                                                       uri.description, entries.count, listed, Double(bytes) / 1e6).utf8))
        }
        output.emit(RunReport(command: command, source: uri.description, dryrun: true,
                              objects: .init(listed: listed, selected: entries.count, done: 0, skipped: 0, failed: 0),
                              bytes: .init(selected: bytes, fetched: 0), failures: [], seconds: MonotonicTime.now() - t0,
                              exitStatus: ExitStatus.success, wouldFetch: entries))
        return ExitStatus.success
    }
}

/// A selection with no objects is most often a typo'd prefix or a filter that matches nothing:
/// one warning line says so, before the summary, and the run still succeeds (exit 0: nothing
/// failed). Not when keys were refused (their failures say why) or the run was interrupted.
enum EmptySelection {
    static func check(selected: Int, failures: Int, interrupted: Bool, uri: S3URI, listed: Int, logger: Logger) {
        guard selected == 0, failures == 0, !interrupted else { return }
        logger.warning("no objects selected under \(uri): \(listed) listed; check the prefix and the --include/--exclude filters")
    }
}
