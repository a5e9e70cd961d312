/// The exit-code contract (README, "Exit status"): one code per class of outcome, the same in
/// every command and mode. main.swift maps every error to its class, ArgumentParser's own
/// included, and a background mount returns its mount process's code.
enum ExitStatus {
    static let success: Int32 = 0
    /// The run could not be done or stopped on an error: S3 (unreachable, no such bucket,
    /// access denied), a credential source that failed, the local file system, a directory
    /// soak refuses, a mount that failed.
    static let failure: Int32 = 1
    /// The command line or the environment is malformed: unknown flag or command, a missing or
    /// invalid argument or option value, an invalid environment value, no credentials or a
    /// wrong credential configuration. Kept at
    /// 2 (what the README documented), not ArgumentParser's 64 (EX_USAGE).
    static let usage: Int32 = 2
    /// The run went through but some selected objects failed (each listed on stderr): a rerun
    /// fetches only those. Distinct from 1 so a script can tell "rerun" from "fix something".
    static let partial: Int32 = 3
    /// Stopped by signal `sig` (SIGINT, SIGTERM) before the end: 128 + sig, as a shell reports it.
    static func interrupted(_ sig: Int32) -> Int32 { 128 + sig }
}

/// A failure to report as one line with exit status 1 (`ExitStatus.failure`).
struct RuntimeError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
