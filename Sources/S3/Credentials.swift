/// AWS credentials and where to find them.
///
/// `Credentials.resolve` walks the same chain as the AWS CLI, minus the parts soak does not
/// implement (SSO, assume-role, credential_process, instance metadata):
/// 1. the environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
/// 2. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials), section
///    `[profile]`;
/// 3. the shared config file (AWS_CONFIG_FILE or ~/.aws/config), section `[profile name]` or
///    `[default]`;
/// where the profile is AWS_PROFILE, else AWS_DEFAULT_PROFILE, else `default`. Half a key pair
/// is an error rather than a silent fall-through, so a typo does not pick up other credentials.
///
/// Secrets never reach logs: `description`, `debugDescription` and the reflection mirror (used
/// by `dump` and `print` of containing values) show the access key id only.
import Foundation

public struct Credentials: Sendable, Equatable, Codable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// Resolves credentials from `environment` and the shared files under `home`.
    /// Throws `CredentialsError` saying what was tried (never any secret) when none are found.
    public static func resolve(environment: [String: String], home: String) throws -> Credentials {
        try resolveWithSource(environment: environment, home: home).credentials
    }

    /// Like `resolve`, also naming where the credentials came from (for a log line), e.g.
    /// `environment` or `/home/me/.aws/credentials [default]`.
    public static func resolveWithSource(environment: [String: String], home: String) throws
        -> (credentials: Credentials, source: String) {
        func env(_ name: String) -> String? {
            guard let v = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        var tried: [String] = []

        // 1. Environment.
        let envKey = env("AWS_ACCESS_KEY_ID"), envSecret = env("AWS_SECRET_ACCESS_KEY")
        switch (envKey, envSecret) {
        case let (k?, s?):
            return (Credentials(accessKeyId: k, secretAccessKey: s,
                                sessionToken: env("AWS_SESSION_TOKEN") ?? env("AWS_SECURITY_TOKEN")), "environment")
        case (_?, nil):
            throw CredentialsError(.incomplete, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        case (nil, _?):
            throw CredentialsError(.incomplete, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
        case (nil, nil):
            tried.append("environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset)")
        }

        let profile = AWSSharedConfig.profileName(environment: environment)
        let explicit = AWSSharedConfig.profileIsExplicit(environment: environment)
        var profileSeen = false
        var unsupported: [String] = []

        // 2. Shared credentials file, then 3. shared config file.
        let files: [(path: String, section: String, lookup: (AWSSharedConfig) -> [String: String]?)] = [
            (AWSSharedConfig.credentialsFilePath(environment: environment, home: home), "[\(profile)]",
             { $0.credentialsProfile(profile) }),
            (AWSSharedConfig.configFilePath(environment: environment, home: home),
             profile == "default" ? "[default]" : "[profile \(profile)]",
             { $0.configProfile(profile) }),
        ]
        for file in files {
            guard let config = AWSSharedConfig.load(path: file.path) else {
                let why = FileManager.default.fileExists(atPath: file.path) ? "unreadable" : "no such file"
                tried.append("\(file.path) (\(why))")
                continue
            }
            guard let settings = file.lookup(config) else {
                tried.append("\(file.path) (no \(file.section) section)")
                continue
            }
            profileSeen = true
            let key = settings["aws_access_key_id"].flatMap { $0.isEmpty ? nil : $0 }
            let secret = settings["aws_secret_access_key"].flatMap { $0.isEmpty ? nil : $0 }
            let token = (settings["aws_session_token"] ?? settings["aws_security_token"]).flatMap { $0.isEmpty ? nil : $0 }
            switch (key, secret) {
            case let (k?, s?):
                return (Credentials(accessKeyId: k, secretAccessKey: s, sessionToken: token),
                        "\(file.path) \(file.section)")
            case (_?, nil):
                throw CredentialsError(.incomplete,
                                       "\(file.path) \(file.section) has aws_access_key_id but no aws_secret_access_key")
            case (nil, _?):
                throw CredentialsError(.incomplete,
                                       "\(file.path) \(file.section) has aws_secret_access_key but no aws_access_key_id")
            case (nil, nil):
                for k in ["role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file"]
                where settings[k] != nil {
                    unsupported.append(k)
                }
                tried.append("\(file.path) \(file.section) (no aws_access_key_id)")
            }
        }

        if explicit && !profileSeen {
            throw CredentialsError(.profileNotFound,
                                   "AWS profile '\(profile)' not found; tried " + tried.joined(separator: ", "))
        }
        var message = "no AWS credentials found; tried " + tried.joined(separator: ", ")
        if !unsupported.isEmpty {
            let list = Array(Set(unsupported)).sorted().joined(separator: ", ")
            message += "; profile '\(profile)' uses \(list), which soak does not support: export "
                + "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN instead"
        }
        throw CredentialsError(.notFound, message)
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
        /// AWS_PROFILE / AWS_DEFAULT_PROFILE names a profile that exists in neither file.
        case profileNotFound
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
