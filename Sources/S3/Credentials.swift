/// AWS credentials: an access key pair, an optional session token and, for temporary
/// credentials, when they expire.
///
/// `Credentials.resolve` walks the default provider chain (`DefaultCredentialChain`, the AWS
/// CLI's order): the environment, the profile's assume-role settings, web identity from the
/// environment, the rest of the profile (SSO refused, static keys, credential_process),
/// container credentials, then EC2 instance metadata.
///
/// Secrets never reach logs: `description`, `debugDescription` and the reflection mirror (used
/// by `dump` and `print` of containing values) show the access key id only.
import Foundation

public struct Credentials: Sendable, Equatable, Codable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// When temporary credentials stop working; nil for long-term keys.
    public var expiration: Date?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil,
                expiration: Date? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    /// Resolves credentials from `environment` and the shared files under `home`.
    /// Throws `CredentialsError` saying what was tried (never any secret) when none are found.
    public static func resolve(environment: [String: String], home: String, profile: String? = nil,
                               region: String? = nil) throws -> Credentials {
        try resolveWithSource(environment: environment, home: home, profile: profile, region: region).credentials
    }

    /// Like `resolve`, also naming where the credentials came from (for a log line), e.g.
    /// `environment` or `profile 'dev' (/home/me/.aws/credentials)`. `profile` is an explicit
    /// `--profile`: only that profile's providers are used. `region` picks the STS endpoint.
    public static func resolveWithSource(environment: [String: String], home: String, profile: String? = nil,
                                         region: String? = nil) throws
        -> (credentials: Credentials, source: String) {
        let context = CredentialContext(environment: environment, home: home, region: region)
        let chain = try DefaultCredentialChain.make(context: context, explicitProfile: profile)
        let found = try chain.resolve()
        return (found.credentials, found.provider.name)
    }
}

extension Credentials: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "Credentials(accessKeyId: \(accessKeyId), secretAccessKey: <redacted>"
            + (sessionToken == nil ? ")" : ", sessionToken: <redacted>)")
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        var children: [(label: String?, value: Any)] = [("accessKeyId", accessKeyId),
                                                         ("secretAccessKey", "<redacted>")]
        if sessionToken != nil { children.append(("sessionToken", "<redacted>")) }
        if let expiration { children.append(("expiration", expiration)) }
        return Mirror(self, children: children, displayStyle: .struct)
    }
}

/// Why no credentials could be used. `description` is one line and contains no secret.
public struct CredentialsError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Nothing anywhere in the chain.
        case notFound
        /// Half a key pair (an id without a secret or the reverse).
        case incomplete
        /// AWS_PROFILE / AWS_DEFAULT_PROFILE / --profile names a profile that exists in neither file.
        case profileNotFound
        /// A source is configured but could not deliver (STS refused, a process failed, a
        /// metadata endpoint answered an error, a token file is missing).
        case failed
        /// The configuration is wrong (a missing source_profile, a cycle, a bad URL or value).
        case invalidConfig
        /// The profile uses something soak does not implement yet (SSO, MFA).
        case unsupported
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
