/// `credential_process`: a profile names a command that prints credentials as JSON.
///
/// The command line is split as botocore splits it (POSIX shell words: quotes and backslashes,
/// no shell, no expansion) and run with `posix_spawnp` (PATH lookup). Its stdout is the
/// document, which is never logged; its stderr is the user's terminal (or log), as with the
/// aws cli; stdin is inherited. A process that has not finished within the context's
/// `processTimeout` is killed. The document must be:
/// `{"Version": 1, "AccessKeyId": …, "SecretAccessKey": …, "SessionToken": …, "Expiration": …}`
/// (the last two optional); credentials that have already expired are refused.
import Foundation
import CSys
import SoakCore

public struct ProcessCredentialProvider: CredentialProvider {
    public let context: CredentialContext
    public let command: String
    public let name: String

    /// The most stdout kept: a credentials document is well under this.
    static let outputLimit = 64 * 1024

    public init(context: CredentialContext, command: String, profile: String) {
        self.context = context
        self.command = command
        self.name = "credential_process of profile '\(profile)'"
    }

    public func load() throws -> Credentials? {
        guard let argv = Self.split(command), !argv.isEmpty else {
            throw CredentialsError(.invalidConfig, "\(name): cannot split the command line (unbalanced quotes?)")
        }
        let program = argv[0]
        let out = try Self.run(argv, environment: context.environment, timeout: context.processTimeout, what: name)
        guard out.status == 0 else {
            throw CredentialsError(.failed, "\(name): \(program) \(out.status < 0 ? "was killed by signal \(-out.status)" : "exited with status \(out.status)")")
        }
        return try Self.parse(out.stdout, source: "\(name): \(program)", now: context.now())
    }

    struct Document: Decodable {
        var Version: Int?
        var AccessKeyId: String?
        var SecretAccessKey: String?
        var SessionToken: String?
        var Expiration: String?
    }

    static func parse(_ stdout: Data, source: String, now: Date) throws -> Credentials {
        guard let doc = try? JSONDecoder().decode(Document.self, from: stdout) else {
            throw CredentialsError(.failed, "\(source): its output is not a JSON credentials document")
        }
        guard doc.Version == 1 else {
            throw CredentialsError(.failed, "\(source): its output has Version \(doc.Version.map(String.init) ?? "missing"), "
                                   + "expected 1")
        }
        let c = try CredentialParsing.make(source: source, accessKeyId: doc.AccessKeyId,
                                           secretAccessKey: doc.SecretAccessKey, sessionToken: doc.SessionToken,
                                           expiration: doc.Expiration)
        try CredentialParsing.checkNotExpired(c, source: source, now: now)
        return c
    }

    /// POSIX shell word splitting without expansion: whitespace separates words; `'…'` is
    /// literal; `"…"` keeps `\"`, `\\`, `\$` and `` \` `` escapes; a backslash outside quotes
    /// escapes the next character. Nil for an unterminated quote.
    static func split(_ line: String) -> [String]? {
        var words: [String] = [], current = "", inWord = false
        var it = Array(line).makeIterator()
        while let c = it.next() {
            switch c {
            case " ", "\t", "\n", "\r":
                if inWord { words.append(current); current = ""; inWord = false }
            case "'":
                inWord = true
                while true {
                    guard let d = it.next() else { return nil }
                    if d == "'" { break }
                    current.append(d)
                }
            case "\"":
                inWord = true
                while true {
                    guard let d = it.next() else { return nil }
                    if d == "\"" { break }
                    if d == "\\" {
                        guard let e = it.next() else { return nil }
                        if !["\"", "\\", "$", "`", "\n"].contains(e) { current.append("\\") }
                        if e != "\n" { current.append(e) }
                    } else {
                        current.append(d)
                    }
                }
            case "\\":
                inWord = true
                if let d = it.next(), d != "\n" { current.append(d) }
            default:
                inWord = true
                current.append(c)
            }
        }
        if inWord { words.append(current) }
        return words
    }

    /// Runs `argv` with stdout captured; returns its exit status (negative: killed by that
    /// signal) and output. Throws when it cannot start, outlives `timeout` or prints too much.
    static func run(_ argv: [String], environment: [String: String], timeout: Double, what: String) throws
        -> (status: Int32, stdout: Data) {
        var fds: [Int32] = [0, 0]
        guard csys_pipe2(&fds, O_CLOEXEC) == 0 else {
            throw CredentialsError(.failed, "\(what): pipe: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears FD_CLOEXEC on stdout; every other descriptor of ours stays closed.
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        var args: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in args { free(p) } }
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, &args, &envp)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw CredentialsError(.failed, "\(what): cannot run \(argv[0]): \(String(cString: strerror(rc)))")
        }
        defer { close(fds[0]) }
        var output = Data()
        var problem: String? = nil
        let deadline = MonotonicTime.now() + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while problem == nil {
            let left = deadline - MonotonicTime.now()
            if left <= 0 { problem = "did not finish within \(Int(timeout)) s and was killed"; break }
            var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let ready = Syscall.retrying { poll(&p, 1, Int32(min(left * 1000 + 1, Double(Int32.max)))) }
            if ready < 0 { problem = "poll failed"; break }
            if ready == 0 { continue }
            let n = Syscall.retrying { buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) } }
            if n == 0 { break }
            if n < 0 { if errno == EAGAIN { continue }; problem = "reading its output failed"; break }
            output.append(contentsOf: buffer[0..<n])
            if output.count > outputLimit { problem = "printed more than \(outputLimit) bytes and was killed" }
        }
        if problem != nil { kill(pid, SIGKILL) }
        let status = Syscall.waitpid(pid) ?? 0
        if let problem { throw CredentialsError(.failed, "\(what): \(argv[0]) \(problem)") }
        let exited = (status & 0x7f) == 0
        return (exited ? (status >> 8) & 0xff : -(status & 0x7f), output)
    }
}
