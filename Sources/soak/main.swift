/// Entry point. `soak __worker` is the hidden worker-process mode the engine re-executes this
/// binary in; everything else is the command line (swift-argument-parser).
import ArgumentParser
import Foundation
import Cache
import Mount
import Prefetcher
import S3
import SoakCore

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("soak: error: \(message)\n".utf8))
    exit(status)
}

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "__worker" {
    exit(Worker.main())
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "__bench-index" {
    exit(BenchIndex.run(Array(CommandLine.arguments.dropFirst(2))))
}

do {
    var command = try Soak.parseAsRoot()
    try command.run()
} catch let code as ExitCode {
    exit(code.rawValue)
} catch let e as UsageError {
    fail(e.message, status: 2)
} catch let e as S3EndpointError {
    fail(e.message, status: 2)
} catch let e as CredentialsError {
    fail(e.message, status: 2)
} catch let e as CacheError {
    fail(e.description, status: 2)
} catch let e as MountError {
    fail(e.message, status: 1)
} catch {
    if Soak.exitCode(for: error) == .success { Soak.exit(withError: error) }  // --help, --version
    let message = Soak.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    FileHandle.standardError.write(Data("soak: error: \(message)\n".utf8))
    exit(Soak.exitCode(for: error).rawValue)
}
