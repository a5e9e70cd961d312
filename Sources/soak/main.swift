/// Entry point. `soak __worker` is the hidden worker-process mode the engine re-executes this
/// binary in; everything else is the command line (swift-argument-parser).
import ArgumentParser
import Engine
import Foundation
import Cache
import Mount
import S3
import SoakCore

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("soak: error: \(message)\n".utf8))
    exit(status)
}

// A peer that went away (a worker, a mount's control socket, a closed stdout) is an EPIPE to
// handle where it happens, never a signal that ends the process.
signal(SIGPIPE, SIG_IGN)

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "__worker" {
    exit(Worker.main())
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "__bench-index" {
    exit(BenchIndex.run(Array(CommandLine.arguments.dropFirst(2))))
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "__bench-md5" {
    exit(BenchMD5.run(Array(CommandLine.arguments.dropFirst(2))))
}

var arguments = Array(CommandLine.arguments.dropFirst())
// mount(8) helpers: `mount.fuse.soak SOURCE DIR -o …` (soak linked under that name), and fuse3's
// mount.fuse3, which runs `soak SOURCE DIR -o …` for `mount -t fuse.soak` and fstab lines.
let invokedAs = CommandLine.arguments.first.flatMap { $0.split(separator: "/").last.map(String.init) }
if invokedAs == MountHelper.name || arguments.first?.hasPrefix("s3://") == true {
    do {
        let (args, env) = try MountHelper.translate(arguments)
        for (k, v) in env { setenv(k, v, 1) }
        arguments = args
    } catch {
        fail(error.message, status: ExitStatus.usage)
    }
}

MountHelper.effectiveArguments = arguments

do {
    var command = try Soak.parseAsRoot(arguments)
    try command.run()
} catch let code as ExitCode {
    exit(code.rawValue)
} catch let e as UsageError {
    fail(e.message, status: ExitStatus.usage)
} catch let e as S3EndpointError {
    fail(e.message, status: ExitStatus.usage)
} catch let e as CredentialsError {
    // A configured source that could not deliver (STS refused, a process failed) is a failure;
    // no credentials, or a configuration that is wrong, is usage.
    fail(e.message, status: e.kind == .failed ? ExitStatus.failure : ExitStatus.usage)
} catch let e as CacheError {
    if case .invalidSize = e { fail(e.description, status: ExitStatus.usage) }
    fail(e.description, status: ExitStatus.failure)
} catch let e as RuntimeError {
    fail(e.message, status: ExitStatus.failure)
} catch let e as MountError {
    fail(e.message, status: ExitStatus.failure)
} catch {
    let code = Soak.exitCode(for: error)
    if code == .success { Soak.exit(withError: error) }  // --help, --version
    let message = Soak.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    FileHandle.standardError.write(Data("soak: error: \(message)\n".utf8))
    // ArgumentParser's parse and validation errors (EX_USAGE, 64) are usage errors here.
    exit(code == .validationFailure ? ExitStatus.usage : ExitStatus.failure)
}
