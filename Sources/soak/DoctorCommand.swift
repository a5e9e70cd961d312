import ArgumentParser
import Foundation
import Logging
import SoakCore

/// `soak doctor`: checks what a first mount needs and says what is wrong, one line each.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check what a first mount needs: credentials, region, endpoint, ListBucket, FUSE, AppArmor, the cache file system.",
        discussion: "One line per check: ok, warn or FAIL, the check's name, what was found. Exit status 0 when no check "
            + "FAILs (warnings included), 1 when one does, 2 for a malformed command line. Each S3 request is one attempt "
            + "of at most 10 s. Creates nothing: the cache probes use an unnamed file, or one unlinked as soon as it is open.")

    @Argument(help: "What you mean to mount, s3://BUCKET/PREFIX.") var source: String
    @OptionGroup var s3: S3Options
    @OptionGroup var cacheOptions: CacheOptions
    @Flag(name: .customLong("allow-other"), help: "Also check what `soak mount --allow-other` needs (user_allow_other in /etc/fuse.conf).")
    var allowOther = false
    @Flag(help: "Print one JSON object with every check on stdout instead of the lines.") var json = false

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        let level = try SoakLogging.parseLevel(s3.logLevel)
        try SoakLogging.bootstrap(level: level, logFile: s3.logFile)
        let logger = Logger(label: "soak")
        let uri = try S3URI(parsing: source)
        let capacity = try cacheOptions.capacity()
        let settings = try s3.engineSettings(env: env, level: level, logger: logger)
        var checks = try DoctorS3(uri: uri, s3: s3, env: env, transport: settings.transport).run()
        checks += DoctorLocal.fuse(allowOther: allowOther, env: env)
        checks += DoctorLocal.cache(directory: cacheOptions.directory(env: env), capacity: capacity)
        let report = DoctorReport(source: uri.description, checks: checks)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            FileHandle.standardOutput.write(try encoder.encode(report) + Data("\n".utf8))
        } else {
            FileHandle.standardOutput.write(Data(checks.map { $0.line + "\n" }.joined().utf8))
        }
        if report.exitStatus != ExitStatus.success { throw ExitCode(report.exitStatus) }
    }
}
