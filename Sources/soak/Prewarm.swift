import ArgumentParser
import Cache
import Engine
import Foundation
import Logging
import Mount
import S3
import SoakCore

struct Prewarm: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fill the cache with every object under s3://BUCKET/PREFIX (resumable).",
        discussion: "Lists the prefix once into the cache index, then fetches every block the cache lacks. "
            + "Filters work as for `soak download`. `--shard I/N` warms a deterministic 1/N of the objects, so N "
            + "machines can split a prefix with no coordination. Same environment as `soak download`.")

    @Argument(help: "Source, s3://BUCKET/PREFIX.") var source: String
    @OptionGroup var s3: S3Options
    @OptionGroup var cacheOptions: CacheOptions
    @Option(help: "Include keys matching this glob again after an --exclude (repeatable; order matters).") var include: [String] = []
    @Option(help: "Skip keys matching this glob (repeatable; order matters).") var exclude: [String] = []
    @Option(help: "Warm only share I of N (0-based), e.g. 2/8.") var shard: String?
    @Option(name: .customLong("metrics-file"), help: "Write metrics to PATH (node_exporter textfile format, e.g. DIR/soak.prom), replaced every few seconds and at the end. Not written when a running mount does the prewarm: scrape its /metrics.") var metricsFile: String?
    @Flag(name: .customLong("no-verify-md5"), help: "Skip checking single-part objects against their ETag's MD5 (saves about 0.45-0.8 CPU-s per GB; blocks still carry CRC32C checksums).")
    var noVerifyMD5 = false
    @OptionGroup var output: OutputOptions

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        let level = try output.bootstrap(s3)
        let logger = Logger(label: "soak")
        let uri = try S3URI(parsing: source)
        let shard = try self.shard.map { try Shard(parsing: $0) } ?? .all
        let settings = try s3.engineSettings(env: env, level: level, logger: logger)
        let rules = FilterOrder.rules(arguments: CommandLine.arguments, include: include, exclude: exclude)
        let dir = cacheOptions.directory(env: env)
        _ = try cacheOptions.capacity()
        if output.dryrun {
            // Nothing is created or asked of a mount: the listing alone shows the selection.
            let store = try s3.client(env: env, bucket: uri.bucket, transport: settings.transport).store
            let filter = KeyFilter(rules)
            let code = try DryRun.run(command: "prewarm", uri: uri, store: store, retry: settings.retry, logger: logger,
                                      output: output) { o, rel in filter.includes(rel) && shard.contains(key: o.key) }
            if code != 0 { throw ExitCode(code) }
            return
        }
        // A mount that owns this cache directory runs the prewarm on its own engine; only a soak
        // cache's control socket is asked (a missing or empty directory has no mount).
        switch try CacheDirectory.classify(dir) {
        case .foreign(let why): throw CacheError.notACache(directory: dir, reason: why)
        case .missing, .empty: break
        case .marked, .legacy:
            if let fd = ControlSocket.connect(cacheDir: dir) {
                defer { close(fd) }
                try delegate(fd: fd, uri: uri, rules: rules, shard: shard, logger: logger)
                return
            }
        }
        let (builder, store, keeper) = try s3.client(env: env, bucket: uri.bucket, transport: settings.transport)
        keeper.start()
        defer { keeper.stop() }
        let cache = try cacheOptions.open(env: env, create: true)
        var options = PrewarmOptions(bucket: uri.bucket, prefix: uri.prefix, endpoint: builder.endpoint.urlString,
                                     filter: KeyFilter(rules), shard: shard)
        options.verifyMD5 = !noVerifyMD5
        let prewarmer = Prewarmer(options: options, store: store, cache: cache, builder: builder, settings: settings,
                                  workerExecutable: try selfExecutable(), logger: logger)
        prewarmer.credentials = keeper
        let metrics = try metricsFile.map { try JobMetricsFile(path: $0, command: "prewarm", logger: logger) }
        let signals = SignalWatcher()
        let display = ProgressDisplay(enabled: output.showsProgress)
        let summary = try prewarmer.run(tick: { display.update($0); metrics?.update($0) }, shouldStop: { signals.received != nil })
        display.finish(prewarmer.progress())
        metrics?.update(prewarmer.progress(), final: true)
        EmptySelection.check(selected: summary.selected, failures: summary.failures.count, interrupted: summary.interrupted,
                             uri: uri, listed: summary.listed, logger: logger)
        if output.showsSummary { Self.printSummary(summary, uri: uri, shard: shard) } else { output.printFailures(summary.failures) }
        if let cap = cache.effectiveCap(cachedBytes: (try? cache.stats().bytes) ?? 0), summary.bytesTotal > cap,
           output.showsSummary {
            FileHandle.standardError.write(Data(String(
                format: "warning: the selection (%.1f MB) is larger than the cache cap (%.1f MB, --cache-size): "
                    + "only the most recently fetched objects stay cached\n", Double(summary.bytesTotal) / 1e6,
                Double(cap) / 1e6).utf8))
        }
        try finish(summary, uri: uri, shard: shard, signal: signals.received)
    }

    /// The `--json` report and the exit status of a finished run.
    func finish(_ summary: PrewarmSummary, uri: S3URI, shard: Shard, signal: Int32?) throws {
        let status = RunReport.exitStatus(failures: summary.failures.count, signal: signal)
        output.emit(RunReport(command: "prewarm", source: uri.description,
                              objects: .init(listed: summary.listed, selected: summary.selected, done: summary.filled,
                                             skipped: summary.alreadyCached, failed: summary.failures.count),
                              bytes: .init(selected: summary.bytesTotal, fetched: summary.bytesFetched),
                              failures: summary.failures, seconds: summary.seconds, interrupted: summary.interrupted,
                              exitStatus: status))
        if status != ExitStatus.success { throw ExitCode(status) }
    }

    /// Hands the prewarm to the running mount and shows its progress and summary.
    func delegate(fd: Int32, uri: S3URI, rules: [FilterRule], shard: Shard, logger: Logger) throws {
        if output.showsSummary {
            FileHandle.standardError.write(Data("soak: a mount owns this cache directory; prewarming through it\n".utf8))
        }
        let display = ProgressDisplay(enabled: output.showsProgress)
        var summary: PrewarmSummary?
        var failure: String?
        var lastProgress: DownloadProgress?
        try ControlSocket.exchange(fd: fd, ControlRequest(op: .prewarm, bucket: uri.bucket, prefix: uri.prefix, rules: rules,
                                                          shard: shard == .all ? nil : shard.description)) { reply in
            if let p = reply.progress { display.update(p); lastProgress = p }
            if let s = reply.summary { summary = s }
            if let e = reply.error { failure = e }
        }
        if let p = lastProgress { display.finish(p) }
        if let failure { throw RuntimeError(failure) }
        guard let summary else { throw RuntimeError("the mount ended the prewarm without a summary (see its log)") }
        EmptySelection.check(selected: summary.selected, failures: summary.failures.count, interrupted: summary.interrupted,
                             uri: uri, listed: summary.listed, logger: logger)
        if output.showsSummary { Self.printSummary(summary, uri: uri, shard: shard) } else { output.printFailures(summary.failures) }
        try finish(summary, uri: uri, shard: shard, signal: nil)
    }

    static func printSummary(_ summary: PrewarmSummary, uri: S3URI, shard: Shard) {
        let mb = Double(summary.bytesFetched) / 1e6
        var out = String(format: "%@: %d objects selected of %d listed%@; %d fetched, %d already cached; "
                         + "%.1f MB fetched in %.2f s (%.0f MB/s)", uri.description, summary.selected, summary.listed,
                         shard == .all ? "" : " (shard \(shard))", summary.filled, summary.alreadyCached, mb,
                         summary.seconds, summary.seconds > 0 ? mb / summary.seconds : 0)
        if summary.didNotFit > 0 { out += "; \(summary.didNotFit) evicted before complete" }
        if summary.removed > 0 { out += "; \(summary.removed) deleted remotely, removed from the cache" }
        if summary.interrupted { out += "; INTERRUPTED" }
        if !summary.failures.isEmpty { out += "; \(summary.failures.count) failed:" }
        FileHandle.standardError.write(Data((out + "\n").utf8))
        for f in summary.failures.prefix(50) { FileHandle.standardError.write(Data("  \(f)\n".utf8)) }
        if summary.failures.count > 50 {
            FileHandle.standardError.write(Data("  … and \(summary.failures.count - 50) more\n".utf8))
        }
    }
}
