import ArgumentParser
import Download
import Engine
import Foundation
import Logging
import Mount
import S3
import SoakCore

/// Options every command that talks to S3 shares.
struct S3Options: ParsableArguments {
    @Option(name: .customLong("endpoint-url"), help: "S3 endpoint URL (default: AWS for the region; env AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, profile endpoint_url).")
    var endpointURL: String?

    @Option(help: "AWS region (env AWS_REGION / AWS_DEFAULT_REGION, profile, EC2 instance metadata, else us-east-1).")
    var region: String?

    @Option(help: "AWS profile whose credentials alone are used (default: the whole chain, with AWS_PROFILE or default).")
    var profile: String?

    @Option(help: "Bucket addressing: path, virtual or auto (default: the profile's s3 addressing_style, else auto).")
    var addressing: String?

    @Flag(name: .customLong("no-sign-request"), help: "Send anonymous requests (public buckets); no credentials are looked up.")
    var noSignRequest = false

    @Option(name: .customLong("ca-bundle"), help: "CA certificate bundle to verify TLS with (env AWS_CA_BUNDLE, profile ca_bundle).")
    var caBundle: String?

    @Option(name: .customLong("request-payer"), help: "Pay for requests to a requester-pays bucket: requester.")
    var requestPayer: String?

    @Option(name: .customLong("log-level"), help: "debug, info, warning or error.")
    var logLevel: String = "warning"

    @Option(name: .customLong("log-file"), help: "Append log lines to this file (created 0600) instead of stderr.")
    var logFile: String?

    /// The endpoint, addressing and CA bundle from the flags, the environment and the profile.
    /// Throws a one-line error for a bad value or an unreadable CA bundle.
    func clientSettings(env: [String: String]) throws -> S3ClientSettings {
        if let payer = requestPayer, payer != "requester" {
            throw UsageError("invalid --request-payer '\(payer)': the only value is requester")
        }
        return try S3ClientSettings.resolve(endpointFlag: endpointURL, addressingFlag: addressing, caBundleFlag: caBundle,
                                            environment: env, home: env["HOME"] ?? NSHomeDirectory(), profile: profile)
    }

    /// The engine settings from the environment contract, logging at `level` in workers too,
    /// with the one warning users must see when TLS verification is off. The CA bundle reaches
    /// workers inside the transport options of their configure message.
    func engineSettings(env: [String: String], level: Logger.Level, logger: Logger) throws -> EngineSettings {
        var settings = try EngineSettings.fromEnvironment(env)
        settings.logLevel = "\(level)"
        settings.logFile = logFile.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
        settings.transport.caBundle = try clientSettings(env: env).caBundle
        settings.transport.proxy = ProxySettings.fromEnvironment(env)
        if !settings.transport.verifyTLS { logger.warning("S3_VERIFY_SSL=false: TLS certificates are NOT verified") }
        return settings
    }

    /// Checks the endpoint, addressing, request payer and CA bundle without resolving
    /// credentials (no network): what a background mount checks before it creates anything.
    func checkEndpoint(env: [String: String]) throws {
        let client = try clientSettings(env: env)
        _ = try S3Endpoint(url: client.endpointURL, region: region ?? "us-east-1", addressing: client.addressing)
    }

    /// Resolves credentials (none with --no-sign-request), region and endpoint into a request
    /// builder, and the keeper that refreshes the credentials (started by the caller).
    func builder(env: [String: String]) throws -> (builder: S3RequestBuilder, keeper: CredentialKeeper) {
        let home = env["HOME"] ?? NSHomeDirectory()
        let client = try clientSettings(env: env)
        let resolved = RegionResolver.resolveWithSource(flag: region, environment: env, home: home, profile: profile)
        let endpoint = try S3Endpoint(url: client.endpointURL, region: resolved.region, addressing: client.addressing)
        let log = Logger(label: "soak")
        log.debug("region \(resolved.region) from \(resolved.source); endpoint \(endpoint.urlString) from \(client.endpointSource)")
        if noSignRequest {
            let anonymous = S3RequestBuilder.anonymous(endpoint: endpoint, requestPayer: requestPayer)
            return (anonymous, CredentialKeeper(fixed: anonymous.credentials))
        }
        // STS uses its global endpoint when no region was configured anywhere.
        let found = try CredentialKeeper.resolve(environment: env, home: home, profile: profile,
                                                 region: resolved.source == "default" ? nil : resolved.region,
                                                 logger: log)
        log.debug("credentials from \(found.source)")
        return (S3RequestBuilder(endpoint: endpoint, credentials: found.keeper.current, requestPayer: requestPayer),
                found.keeper)
    }

    /// A store for `bucket` whose region is known: on an AWS endpoint one HEAD bucket finds a
    /// bucket that lives in another region, and the builder returned (what workers get) signs
    /// for that region. The store signs with the keeper's current credentials.
    func client(env: [String: String], bucket: String, transport: TransportOptions) throws
        -> (builder: S3RequestBuilder, store: CurlObjectStore, keeper: CredentialKeeper) {
        let (configured, keeper) = try builder(env: env)
        let store = try CurlObjectStore(builder: configured, options: transport, credentials: keeper)
        let found = store.discoverRegion(bucket: bucket)
        if found.endpoint.region != configured.endpoint.region {
            Logger(label: "soak").info("bucket \(bucket) is in \(found.endpoint.region), not \(configured.endpoint.region): using \(found.endpoint.region)")
        }
        return (found, store, keeper)
    }
}

struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download every object under s3://BUCKET/PREFIX into DEST (resumable).",
        discussion: "Files land at DEST/<key relative to PREFIX>. Filters are fnmatch globs on that relative "
            + "key (`*` crosses `/`), applied in the order given, later ones winning, as in `aws s3 sync`. "
            + "Environment: MIN_PROCESSES, MAX_PROCESSES, MAX_SPEED (MB/s), OPTIMIZATION_INTERVAL (s), MAX_RETRIES, "
            + "RETRY_DELAY (s), S3_VERIFY_SSL, AWS_CA_BUNDLE, and the usual AWS credential variables and files.")

    @Argument(help: "Source, s3://BUCKET/PREFIX.") var source: String
    @Argument(help: "Destination directory.") var destination: String
    @OptionGroup var s3: S3Options
    @Option(help: "Include keys matching this glob again after an --exclude (repeatable; order matters).") var include: [String] = []
    @Option(help: "Skip keys matching this glob (repeatable; order matters).") var exclude: [String] = []
    @OptionGroup var output: OutputOptions
    @Option(name: .customLong("metrics-file"), help: "Write metrics to PATH (node_exporter textfile format, e.g. DIR/soak.prom), replaced every few seconds and at the end.") var metricsFile: String?

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        let level = try output.bootstrap(s3)
        let logger = Logger(label: "soak")
        let uri = try S3URI(parsing: source)
        guard !destination.isEmpty else { throw UsageError("DEST must not be empty") }
        let settings = try s3.engineSettings(env: env, level: level, logger: logger)
        let (builder, store, keeper) = try s3.client(env: env, bucket: uri.bucket, transport: settings.transport)
        keeper.start()
        defer { keeper.stop() }
        let rules = FilterOrder.rules(arguments: CommandLine.arguments, include: include, exclude: exclude)
        if output.dryrun {
            let filter = KeyFilter(rules)
            let code = try DryRun.run(command: "download", uri: uri, store: store, retry: settings.retry, logger: logger,
                                      output: output) { _, rel in filter.includes(rel) }
            if code != 0 { throw ExitCode(code) }
            return
        }
        let dest = destination.hasPrefix("/") ? destination
            : FileManager.default.currentDirectoryPath + "/" + destination
        var options = DownloadOptions(bucket: uri.bucket, prefix: uri.prefix, destination: dest,
                                      filter: KeyFilter(rules))
        // Tuning knob for measurements: part size in MiB for objects split into ranges.
        if let raw = env["SOAK_PART_SIZE_MB"], !raw.isEmpty {
            guard let mb = Int(raw), (1...1024).contains(mb) else {
                throw UsageError("invalid SOAK_PART_SIZE_MB='\(raw)': expected a whole number in 1...1024")
            }
            options.partSize = Int64(mb) << 20
            options.singlePartLimit = max(options.singlePartLimit, options.partSize)
        }
        let downloader = Downloader(options: options, store: store, builder: builder, settings: settings,
                                    workerExecutable: try selfExecutable(), logger: logger)
        downloader.credentials = keeper
        let metrics = try metricsFile.map { try JobMetricsFile(path: $0, command: "download", logger: logger) }
        let signals = SignalWatcher()
        let display = ProgressDisplay(enabled: output.showsProgress)
        let summary = try downloader.run(tick: { display.update($0); metrics?.update($0) }, shouldStop: { signals.received != nil })
        display.finish(downloader.progress())
        metrics?.update(downloader.progress(), final: true)
        EmptySelection.check(selected: summary.selected, failures: summary.failures.count, interrupted: summary.interrupted,
                             uri: uri, listed: summary.listed, logger: logger)
        if output.showsSummary { Self.printSummary(summary, source: uri) } else { output.printFailures(summary.failures) }
        let status = RunReport.exitStatus(failures: summary.failures.count, signal: signals.received)
        output.emit(RunReport(command: "download", source: uri.description,
                              objects: .init(listed: summary.listed, selected: summary.selected, done: summary.downloaded,
                                             skipped: summary.skippedUpToDate, failed: summary.failures.count),
                              bytes: .init(selected: summary.bytesTotal, fetched: summary.bytesFetched),
                              failures: summary.failures, seconds: summary.seconds, interrupted: summary.interrupted,
                              exitStatus: status))
        if status != ExitStatus.success { throw ExitCode(status) }
    }

    static func printSummary(_ s: DownloadSummary, source: S3URI) {
        let mb = Double(s.bytesFetched) / 1e6
        let rate = s.seconds > 0 ? mb / s.seconds : 0
        var out = String(format: "%@: %d objects selected of %d listed; %d downloaded, %d already up to date; "
                         + "%.1f MB fetched in %.2f s (%.0f MB/s)", source.description, s.selected, s.listed,
                         s.downloaded, s.skippedUpToDate, mb, s.seconds, rate)
        if s.interrupted { out += "; INTERRUPTED" }
        if !s.failures.isEmpty { out += "; \(s.failures.count) failed:" }
        FileHandle.standardError.write(Data((out + "\n").utf8))
        for f in s.failures.prefix(50) { FileHandle.standardError.write(Data("  \(f)\n".utf8)) }
        if s.failures.count > 50 {
            FileHandle.standardError.write(Data("  … and \(s.failures.count - 50) more\n".utf8))
        }
    }
}

/// Include/exclude order matters (later rules win), and the parser collects each option into its
/// own array, so the order is recovered from the raw arguments.
enum FilterOrder {
    static func rules(arguments: [String], include: [String], exclude: [String]) -> [FilterRule] {
        var rules: [FilterRule] = []
        var i = 1
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { break }
            if a == "--include" || a == "--exclude", i + 1 < arguments.count {
                rules.append(a == "--include" ? .include(arguments[i + 1]) : .exclude(arguments[i + 1]))
                i += 2; continue
            }
            if a.hasPrefix("--include=") { rules.append(.include(String(a.dropFirst(10)))) }
            if a.hasPrefix("--exclude=") { rules.append(.exclude(String(a.dropFirst(10)))) }
            i += 1
        }
        // Fall back to parser order if the raw scan disagrees (e.g. arguments from elsewhere).
        let inc = rules.compactMap { if case .include(let p) = $0 { return p } else { return nil } }
        let exc = rules.compactMap { if case .exclude(let p) = $0 { return p } else { return nil } }
        if inc != include || exc != exclude { return exclude.map { .exclude($0) } + include.map { .include($0) } }
        return rules
    }
}

/// The running binary, re-executed as `soak __worker` for worker processes.
func selfExecutable() throws -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    guard n > 0 else { throw RuntimeError("cannot find the soak executable (/proc/self/exe)") }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
