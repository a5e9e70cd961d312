import ArgumentParser
import Cache
import Engine
import Foundation
import Logging
import Mount
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount s3://BUCKET/PREFIX read-only at DIR, served from the local cache.",
        discussion: "Lists the prefix into the cache index, then serves `ls`/`stat` from it and file data from the "
            + "cache, fetching missing blocks ahead of any prefetch work. Runs in the background once the mount is "
            + "ready (log: --log-file, else CACHE_DIR/mount.log) unless --foreground. Unmount with `umount DIR` (or "
            + "`fusermount3 -u DIR`), SIGINT or SIGTERM.")

    @Argument(help: "Source, s3://BUCKET/PREFIX.") var source: String
    @Argument(help: "Mountpoint: an existing, empty directory.") var mountpoint: String
    @OptionGroup var s3: S3Options
    @OptionGroup var cacheOptions: CacheOptions
    @Option(help: "Show keys matching this glob again after an --exclude (repeatable; order matters).") var include: [String] = []
    @Option(help: "Hide keys matching this glob (repeatable; order matters).") var exclude: [String] = []
    @Flag(help: "Stay in the foreground (logs to stderr).") var foreground = false
    @Flag(name: .customLong("allow-other"), help: "Let other users see the mount (needs user_allow_other in /etc/fuse.conf for non-root).") var allowOther = false
    @Option(help: "Owner uid of files (default: yours).") var uid: UInt32?
    @Option(help: "Owner gid of files (default: yours).") var gid: UInt32?
    @Option(name: .customLong("metadata-ttl"), help: "Seconds names, attributes and directory listings are trusted before they are asked again (a file opened after that is checked with a HEAD).") var metadataTTL: Double = 60
    @Option(name: .customLong("eager-listing"), help: "List the whole prefix at mount time if it has at most this many keys; larger prefixes are listed per directory as used (0 = always per directory).") var eagerListing: Int = MountService.defaultEagerListingKeys
    @Flag(help: "Warm every shown object into the cache while mounted (bulk lane; reads always go first).") var prefetch = false
    @Flag(name: .customLong("no-verify-md5"), help: "Skip checking complete single-part objects against their ETag's MD5 (blocks still carry CRC32C checksums).") var noVerifyMD5 = false
    @Option(name: .customLong("read-ahead"), help: "MiB fetched ahead of a sequential reader (0 = off).") var readAhead: Int = 64
    @Option(name: .customLong("metrics-address"), help: "Serve Prometheus metrics (GET /metrics) on HOST:PORT: 127.0.0.1:9100, [::1]:9100, or :9100 for all interfaces.") var metricsAddress: String?

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        let level = try SoakLogging.parseLevel(s3.logLevel)
        let uri = try S3URI(parsing: source)
        guard metadataTTL >= 0, metadataTTL.isFinite else { throw UsageError("invalid --metadata-ttl: expected seconds >= 0") }
        guard eagerListing >= 0 else { throw UsageError("invalid --eager-listing \(eagerListing): expected a key count >= 0") }
        guard (0...1024).contains(readAhead) else { throw UsageError("invalid --read-ahead \(readAhead): expected 0...1024 MiB") }
        if let metricsAddress { _ = try MetricsServer.parse(metricsAddress) }
        let dir = mountpoint.hasPrefix("/") ? mountpoint : FileManager.default.currentDirectoryPath + "/" + mountpoint
        _ = try s3.clientSettings(env: env)  // a bad CA bundle or endpoint is exit 2, before daemonizing
        if !foreground && env["SOAK_MOUNT_DAEMON"] == nil {
            // Bad input is found here, before the cache directory and its log are made; what
            // only the mount process can find (credentials: the chain may ask the network, so it
            // runs once, there) comes back as its exit status.
            _ = try cacheOptions.capacity()
            _ = try s3.engineSettings(env: env, level: level, logger: Logger(label: "soak"))
            try s3.checkEndpoint(env: env)
            throw ExitCode(try Self.daemonize(cacheDir: cacheOptions.directory(env: env), mountpoint: dir,
                                              logFile: s3.logFile))
        }
        let daemon = env["SOAK_MOUNT_DAEMON"] == "1"
        if daemon { _ = setsid() }
        // Before any thread starts: see MountService.setStopSignals.
        MountService.setStopSignals(blocked: true)
        try SoakLogging.bootstrap(level: level, logFile: s3.logFile)
        let logger = Logger(label: "soak")
        let notifier = daemon ? nil : MountNotifier(environment: env, logger: logger)
        notifier?.starting(source: "\(uri)")
        let settings = try s3.engineSettings(env: env, level: level, logger: logger)
        let transport = settings.transport
        // Bad settings fail here, once; the builder signs for the bucket's own region.
        let (builder, _, keeper) = try s3.client(env: env, bucket: uri.bucket, transport: transport)
        keeper.start()
        defer { keeper.stop() }
        let cache = try cacheOptions.open(env: env, create: true)
        let rules = FilterOrder.rules(arguments: CommandLine.arguments, include: include, exclude: exclude)
        var options = MountOptions(bucket: uri.bucket, prefix: uri.prefix, endpoint: builder.endpoint.urlString,
                                   mountpoint: dir, filter: KeyFilter(rules))
        options.allowOther = allowOther
        if let uid { options.uid = uid }
        if let gid { options.gid = gid }
        options.metadataTTL = metadataTTL
        options.prefetch = prefetch
        options.verifyMD5 = !noVerifyMD5
        options.readAheadMiB = readAhead
        options.metricsAddress = metricsAddress
        options.eagerListingKeys = eagerListing
        let service = MountService(options: options, makeStore: { try CurlObjectStore(builder: builder, options: transport, credentials: keeper) },
                                   cache: cache, builder: builder, settings: settings,
                                   workerExecutable: try selfExecutable(), logger: logger, credentials: keeper)
        try service.run(ready: {
            notifier?.mounted(source: "\(uri)", mountpoint: dir)
            if daemon {
                // Tell the waiting parent, then stop writing to its pipe.
                FileHandle.standardOutput.write(Data("ready\n".utf8))
                _ = dup2(2, 1)
            } else {
                FileHandle.standardError.write(Data("soak: mounted \(uri) at \(dir); unmount with `umount \(dir)` or Ctrl-C\n".utf8))
            }
        }, stopping: { notifier?.stopping(mountpoint: dir) })
    }

    /// Re-runs this command in the foreground as a detached child (own session, log file), and
    /// returns once it reports the mount ready (exit 0) or dies (its last log line, and its exit
    /// status, so a background mount fails with the code `--foreground` would).
    static func daemonize(cacheDir: String, mountpoint: String, logFile: String?) throws -> Int32 {
        // The log lives in the cache directory (only in one that is, or now becomes, soak's)
        // unless --log-file names another; the mount process appends its lines there too.
        try CacheDirectory.prepare(cacheDir)
        let logPath = logFile ?? cacheDir + "/mount.log"
        let fd = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw UsageError("cannot open log file \(logPath): \(String(cString: strerror(errno)))") }
        let log = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        let start = UInt64(max(0, lseek(fd, 0, SEEK_END)))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try selfExecutable())
        p.arguments = MountHelper.effectiveArguments
        var env = ProcessInfo.processInfo.environment
        env["SOAK_MOUNT_DAEMON"] = "1"
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        try p.run()
        try? pipe.fileHandleForWriting.close()
        let answer = pipe.fileHandleForReading.readDataToEndOfFile()
        if String(decoding: answer, as: UTF8.self).hasPrefix("ready") {
            FileHandle.standardError.write(Data("soak: mounted at \(mountpoint) (pid \(p.processIdentifier), log \(logPath))\n".utf8))
            return 0
        }
        p.waitUntilExit()
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let mine = text.utf8.count > Int(start) ? String(text.utf8.dropFirst(Int(start))) ?? "" : ""
        let last = mine.split(separator: "\n").last.map { SoakLogging.strippingTimestamp(String($0)) }
            ?? "the mount process exited with status \(p.terminationStatus)"
        FileHandle.standardError.write(Data("\(last.hasPrefix("soak:") ? last : "soak: error: " + last)\n".utf8))
        if p.terminationReason == .uncaughtSignal { return ExitStatus.interrupted(p.terminationStatus) }
        return p.terminationStatus == 0 ? ExitStatus.failure : p.terminationStatus
    }
}
