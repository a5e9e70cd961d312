/// One place credentials can come from, and an ordered chain of them.
///
/// A provider's `load` answers in one of three ways, as the AWS SDKs' providers do:
/// - credentials: use them;
/// - nil: this source is not configured here, try the next one;
/// - a throw (`CredentialsError`): this source is configured but failed. The chain stops there
///   rather than silently falling through to other credentials (a typo must not pick up a
///   different identity), and the error names the source and why, in one line, with no secret.
import Foundation
import SoakCore

public protocol CredentialProvider: Sendable {
    /// Names the source in messages, e.g. `environment` or `EC2 instance metadata`.
    var name: String { get }
    /// Loads fresh credentials (temporary ones are fetched again on every call).
    func load() throws -> Credentials?
}

/// What providers read from outside the process: the environment, the home directory (for
/// `~/.aws`), the region (for the STS endpoint), transport settings and the clock.
public struct CredentialContext: Sendable {
    public var environment: [String: String]
    public var home: String
    /// The region STS is called in; nil means none is known (the global STS endpoint is used).
    public var region: String?
    /// TLS settings for STS and https container endpoints.
    public var transport: TransportOptions
    /// Seconds a credential_process may run before it is killed.
    public var processTimeout: Double
    /// Wall-clock time (role session names, expiry checks); injectable for tests.
    public var now: @Sendable () -> Date

    /// A credential_process that has not answered in this long is stuck (the Go SDK's default).
    public static let defaultProcessTimeout: Double = 60

    public init(environment: [String: String], home: String, region: String? = nil,
                transport: TransportOptions = TransportOptions(),
                processTimeout: Double = CredentialContext.defaultProcessTimeout,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.environment = environment
        self.home = home
        self.region = region
        self.transport = transport
        self.processTimeout = processTimeout
        self.now = now
    }

    /// The variable's value, trimmed; nil when unset or blank.
    public func env(_ name: String) -> String? {
        guard let v = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
        return v
    }

    /// True when the variable is `true` in any letter case (how the SDKs read boolean flags).
    func flag(_ name: String) -> Bool { env(name)?.lowercased() == "true" }
}

/// Providers tried in order; the first that answers wins.
public struct CredentialChain: CredentialProvider {
    public let providers: [any CredentialProvider]
    /// What to say when nothing answered (e.g. the files that were looked at).
    public let notFoundHint: String?

    public init(_ providers: [any CredentialProvider], notFoundHint: String? = nil) {
        self.providers = providers
        self.notFoundHint = notFoundHint
    }

    public var name: String { "credential chain" }

    public func load() throws -> Credentials? { try resolve().credentials }

    /// The credentials and the provider that gave them (to call again for a refresh).
    /// Throws the first provider's failure, or `.notFound` naming every source tried.
    public func resolve() throws -> (credentials: Credentials, provider: any CredentialProvider) {
        for p in providers {
            if let c = try p.load() { return (c, p) }
        }
        var names: [String] = []
        for p in providers where !names.contains(p.name) { names.append(p.name) }
        var message = "no AWS credentials found; tried " + names.joined(separator: ", ")
        if let notFoundHint { message += "; " + notFoundHint }
        throw CredentialsError(.notFound, message)
    }
}

/// Shared checks for the JSON and XML answers of temporary-credential sources.
enum CredentialParsing {
    /// Builds credentials from the fields every source returns, or throws naming what is missing.
    static func make(source: String, accessKeyId: String?, secretAccessKey: String?, sessionToken: String?,
                     expiration: String?) throws -> Credentials {
        func clean(_ s: String?) -> String? {
            guard let v = s?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        guard let key = clean(accessKeyId) else {
            throw CredentialsError(.failed, "\(source): the answer has no AccessKeyId")
        }
        guard let secret = clean(secretAccessKey) else {
            throw CredentialsError(.failed, "\(source): the answer has no SecretAccessKey")
        }
        var expires: Date? = nil
        if let raw = clean(expiration) {
            guard let t = UTCTime.parseISO8601(raw) else {
                throw CredentialsError(.failed, "\(source): Expiration '\(PathError.printable(raw))' is not an ISO 8601 time")
            }
            expires = Date(timeIntervalSince1970: t)
        }
        return Credentials(accessKeyId: key, secretAccessKey: secret, sessionToken: clean(sessionToken),
                           expiration: expires)
    }

    /// Refuses credentials that have already expired (a stale cache behind a process or endpoint).
    static func checkNotExpired(_ c: Credentials, source: String, now: Date) throws {
        if let e = c.expiration, e <= now {
            throw CredentialsError(.failed, "\(source): the credentials it returned expired at \(isoString(e))")
        }
    }

    static func isoString(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: d)
    }
}
