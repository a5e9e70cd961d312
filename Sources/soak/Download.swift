import ArgumentParser
import Foundation
import Logging
import Prefetcher
import S3
import SoakCore

/// Options every command that talks to S3 shares.
struct S3Options: ParsableArguments {
    @Option(name: .customLong("endpoint-url"), help: "S3 endpoint URL (default: AWS for the region; env AWS_ENDPOINT_URL).")
    var endpointURL: String?

    @Option(help: "AWS region (env AWS_REGION / AWS_DEFAULT_REGION, profile, else us-east-1).")
    var region: String?

    @Option(help: "AWS profile whose credentials alone are used (default: the whole chain, with AWS_PROFILE or default).")
    var profile: String?

    @Option(help: "Bucket addressing: path, virtual or auto.")
    var addressing: String = "auto"

    @Option(name: .customLong("log-level"), help: "debug, info, warning or error.")
    var logLevel: String = "warning"

    /// The engine settings from the environment contract, logging at `level` in workers too,
    /// with the one warning users must see when TLS verification is off.
    func engineSettings(env: [String: String], level: Logger.Level, logger: Logger) throws -> EngineSettings {
        var settings = try EngineSettings.fromEnvironment(env)
        settings.logLevel = "\(level)"
        if !settings.transport.verifyTLS { logger.warning("S3_VERIFY_SSL=false: TLS certificates are NOT verified") }
        return settings
    }

    /// Checks --addressing and the endpoint URL without resolving credentials (no network):
    /// what a background mount checks before it creates anything.
    func checkEndpoint(env: [String: String]) throws {
        let mode = try addressingMode()
        let url = endpointURL ?? env["AWS_ENDPOINT_URL_S3"] ?? env["AWS_ENDPOINT_URL"]
        _ = try S3Endpoint(url: url, region: region ?? "us-east-1", addressing: mode)
    }

    func addressingMode() throws -> Addressing {
        guard let mode = Addressing(rawValue: addressing) else {
            throw UsageError("invalid --addressing '\(addressing)': use path, virtual or auto")
        }
        return mode
    }

    /// Resolves credentials, region and endpoint into a request builder.
    func builder(env: [String: String]) throws -> S3RequestBuilder {
        let mode = try addressingMode()
        var env = env
        let home = env["HOME"] ?? NSHomeDirectory()
        // --profile also picks the profile the region is read from.
        if let profile, !profile.isEmpty { env["AWS_PROFILE"] = profile }
        let resolved = RegionResolver.resolveWithSource(flag: region, environment: env, home: home)
        let url = endpointURL ?? env["AWS_ENDPOINT_URL_S3"] ?? env["AWS_ENDPOINT_URL"]
        let endpoint = try S3Endpoint(url: url, region: resolved.region, addressing: mode)
        // STS uses its global endpoint when no region was configured anywhere.
        let found = try Credentials.resolveWithSource(environment: env, home: home, profile: profile,
                                                      region: resolved.source == "default" ? nil : resolved.region)
        Logger(label: "soak").debug("credentials from \(found.source)")
        return S3RequestBuilder(endpoint: endpoint, credentials: found.credentials)
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

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        let level = try SoakLogging.parseLevel(s3.logLevel)
        SoakLogging.bootstrap(level: level)
        let logger = Logger(label: "soak")
        let uri = try S3URI(parsing: source)
        guard !destination.isEmpty else { throw UsageError("DEST must not be empty") }
        let settings = try s3.engineSettings(env: env, level: level, logger: logger)
        let builder = try s3.builder(env: env)
        let store = try CurlObjectStore(builder: builder, options: settings.transport)
        let rules = FilterOrder.rules(arguments: CommandLine.arguments, include: include, exclude: exclude)
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
        let signals = SignalWatcher()
        let display = ProgressDisplay(logger: logger)
        let summary = try downloader.run(tick: { display.update($0) }, shouldStop: { signals.received != nil })
        display.finish(downloader.progress())
        Self.printSummary(summary, source: uri)
        if let sig = signals.received { throw ExitCode(ExitStatus.interrupted(sig)) }
        if !summary.failures.isEmpty { throw ExitCode(ExitStatus.partial) }
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
