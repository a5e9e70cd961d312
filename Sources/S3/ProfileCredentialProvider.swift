/// Credentials from a named profile of the shared files, with botocore's rules.
///
/// A profile is the union of `[profile NAME]` (`[default]`) in the config file and `[NAME]` in
/// the credentials file, the credentials file winning a key both set. Within a profile, in order:
/// 1. `role_arn` (without `web_identity_token_file`): STS `AssumeRole`, signed with the keys of
///    `source_profile` (which may itself assume a role; a cycle is an error, a profile naming
///    itself uses its own static keys) or of `credential_source` (`Environment`,
///    `Ec2InstanceMetadata`, `EcsContainer`), with `external_id`, `role_session_name` and
///    `duration_seconds`. `mfa_serial` is refused: soak cannot prompt for a code;
/// 2. `web_identity_token_file` + `role_arn`: STS `AssumeRoleWithWebIdentity`;
/// 3. SSO (`sso_start_url`, `sso_session`): refused, not supported yet;
/// 4. static keys in the credentials file (+ `aws_session_token`);
/// 5. `credential_process`;
/// 6. static keys in the config file.
/// botocore consults step 1 before web identity from the environment, and the rest after it,
/// so the provider comes in two parts (`Part`) that the default chain places around it.
import Foundation

public struct ProfileCredentialProvider: CredentialProvider {
    public enum Part: Sendable { case assumeRole, rest, all }

    public let context: CredentialContext
    public let profile: String
    public let part: Part
    /// True when the profile was asked for by name (--profile, AWS_PROFILE): missing is an error.
    public let explicit: Bool

    public init(context: CredentialContext, profile: String, part: Part = .all, explicit: Bool) {
        self.context = context
        self.profile = profile
        self.part = part
        self.explicit = explicit
    }

    public var name: String { "profile '\(profile)'" }

    public func load() throws -> Credentials? {
        let files = AWSProfileFiles(context: context)
        guard files.exists(profile) else {
            if explicit {
                throw CredentialsError(.profileNotFound, "AWS profile '\(profile)' not found in "
                                       + "\(files.credentialsPath) or \(files.configPath)")
            }
            return nil
        }
        let settings = files.merged(profile)
        if part != .rest, Self.isAssumeRole(settings) {
            var visited = [profile]
            return try assumeRole(profile, files: files, visited: &visited)
        }
        if part != .assumeRole { return try rest(profile, files: files) }
        return nil
    }

    static func isAssumeRole(_ s: [String: String]) -> Bool {
        s.nonEmpty("role_arn") != nil && s.nonEmpty("web_identity_token_file") == nil
    }

    /// Steps 2 to 6 for `name`.
    private func rest(_ name: String, files: AWSProfileFiles) throws -> Credentials? {
        let s = files.merged(name)
        let label = "profile '\(name)'"
        if let tokenFile = s.nonEmpty("web_identity_token_file") {
            let p = WebIdentityCredentialProvider(context: context, name: "\(label) web_identity_token_file",
                                                  tokenFile: tokenFile, roleArn: s.nonEmpty("role_arn"),
                                                  sessionName: s.nonEmpty("role_session_name"),
                                                  durationSeconds: try duration(s, label))
            return try p.load()
        }
        if let key = ["sso_session", "sso_start_url"].first(where: { s.nonEmpty($0) != nil }) {
            throw CredentialsError(.unsupported, "\(label) uses SSO (\(key)), which soak does not support yet: "
                                   + "run `aws configure export-credentials --profile \(name) --format env` and "
                                   + "export the result, or use a credential_process")
        }
        if let c = try Self.staticKeys(files.credentialsFile?.credentialsProfile(name),
                                       where: "\(files.credentialsPath) [\(name)]") {
            return c
        }
        if let command = s.nonEmpty("credential_process") {
            return try ProcessCredentialProvider(context: context, command: command, profile: name).load()
        }
        let section = name == "default" ? "[default]" : "[profile \(name)]"
        return try Self.staticKeys(files.configFile?.configProfile(name), where: "\(files.configPath) \(section)")
    }

    /// `aws_access_key_id` + `aws_secret_access_key` (+ `aws_session_token`) of one section;
    /// half a pair is an error naming the section and never the value.
    static func staticKeys(_ s: [String: String]?, where location: String) throws -> Credentials? {
        guard let s else { return nil }
        switch (s.nonEmpty("aws_access_key_id"), s.nonEmpty("aws_secret_access_key")) {
        case let (k?, secret?):
            return Credentials(accessKeyId: k, secretAccessKey: secret,
                               sessionToken: s.nonEmpty("aws_session_token") ?? s.nonEmpty("aws_security_token"))
        case (_?, nil):
            throw CredentialsError(.incomplete, "\(location) has aws_access_key_id but no aws_secret_access_key")
        case (nil, _?):
            throw CredentialsError(.incomplete, "\(location) has aws_secret_access_key but no aws_access_key_id")
        case (nil, nil):
            return nil
        }
    }

    private func duration(_ s: [String: String], _ label: String) throws -> Int? {
        guard let raw = s.nonEmpty("duration_seconds") else { return nil }
        guard let d = Int(raw), d > 0 else {
            throw CredentialsError(.invalidConfig, "\(label): duration_seconds '\(raw)' is not a whole number of seconds")
        }
        return d
    }

    /// Step 1 for `name`: its source's credentials, then `AssumeRole`.
    private func assumeRole(_ name: String, files: AWSProfileFiles, visited: inout [String]) throws -> Credentials {
        let s = files.merged(name)
        let label = "profile '\(name)'"
        guard let roleArn = s.nonEmpty("role_arn") else {
            throw CredentialsError(.invalidConfig, "\(label) has no role_arn")
        }
        if s.nonEmpty("mfa_serial") != nil {
            throw CredentialsError(.unsupported, "\(label) uses mfa_serial, which soak does not support yet (it cannot "
                                   + "prompt for a code): export temporary credentials from `aws sts assume-role` instead")
        }
        let source: Credentials
        switch (s.nonEmpty("source_profile"), s.nonEmpty("credential_source")) {
        case (_?, _?):
            throw CredentialsError(.invalidConfig, "\(label) has both source_profile and credential_source; use one")
        case (nil, nil):
            throw CredentialsError(.invalidConfig, "\(label) has role_arn but neither source_profile nor credential_source")
        case let (nil, kind?):
            source = try credentialSource(kind, label: label)
        case let (sourceName?, nil):
            guard files.exists(sourceName) else {
                throw CredentialsError(.invalidConfig, "the source_profile '\(sourceName)' of \(label) does not exist")
            }
            let sourceSettings = files.merged(sourceName)
            if visited.contains(sourceName) {
                // A profile may name itself to use its own static keys; any other repeat is a loop.
                guard sourceName == name, Self.hasStaticKeys(sourceSettings) else {
                    throw CredentialsError(.invalidConfig, "source_profile loop: "
                                           + (visited + [sourceName]).map { "'\($0)'" }.joined(separator: " -> "))
                }
            }
            visited.append(sourceName)
            if Self.hasStaticKeys(sourceSettings) {
                // botocore's order for a source: its static keys win over its own role_arn.
                guard let c = try Self.staticKeys(sourceSettings, where: "profile '\(sourceName)'") else {
                    throw CredentialsError(.invalidConfig, "the source_profile '\(sourceName)' has no credentials")
                }
                source = c
            } else if !Self.isAssumeRole(sourceSettings) {
                guard let c = try rest(sourceName, files: files) else {
                    throw CredentialsError(.invalidConfig, "the source_profile '\(sourceName)' of \(label) has no credentials")
                }
                source = c
            } else {
                source = try assumeRole(sourceName, files: files, visited: &visited)
            }
        }
        let request = STSClient.RoleRequest(roleArn: roleArn,
                                            sessionName: s.nonEmpty("role_session_name")
                                                ?? STSClient.defaultSessionName(now: context.now()),
                                            externalId: s.nonEmpty("external_id"),
                                            durationSeconds: try duration(s, label))
        return try STSClient(context: context).assumeRole(request, source: source, what: "\(label) role_arn")
    }

    private func credentialSource(_ kind: String, label: String) throws -> Credentials {
        let provider: any CredentialProvider
        switch kind {
        case "Environment": provider = EnvironmentCredentialProvider(context: context)
        case "Ec2InstanceMetadata": provider = InstanceMetadataCredentialProvider(context: context)
        case "EcsContainer": provider = ContainerCredentialProvider(context: context)
        default:
            throw CredentialsError(.invalidConfig, "\(label): credential_source '\(kind)' is not one of Environment, "
                                   + "Ec2InstanceMetadata, EcsContainer")
        }
        guard let c = try provider.load() else {
            throw CredentialsError(.failed, "\(label): credential_source \(kind) found no credentials (\(provider.name))")
        }
        return c
    }

    static func hasStaticKeys(_ s: [String: String]) -> Bool {
        s.nonEmpty("aws_access_key_id") != nil && s.nonEmpty("aws_secret_access_key") != nil
    }
}

/// Both shared files, read once per load.
struct AWSProfileFiles {
    let configPath: String
    let credentialsPath: String
    let configFile: AWSSharedConfig?
    let credentialsFile: AWSSharedConfig?

    init(context: CredentialContext) {
        configPath = AWSSharedConfig.configFilePath(environment: context.environment, home: context.home)
        credentialsPath = AWSSharedConfig.credentialsFilePath(environment: context.environment, home: context.home)
        configFile = AWSSharedConfig.load(path: configPath)
        credentialsFile = AWSSharedConfig.load(path: credentialsPath)
    }

    func exists(_ profile: String) -> Bool {
        configFile?.configProfile(profile) != nil || credentialsFile?.credentialsProfile(profile) != nil
    }

    /// The config file's settings overlaid with the credentials file's.
    func merged(_ profile: String) -> [String: String] {
        var s = configFile?.configProfile(profile) ?? [:]
        for (k, v) in credentialsFile?.credentialsProfile(profile) ?? [:] { s[k] = v }
        return s
    }

    /// How each file stands for `profile`, for a "nothing found" message.
    func describe(_ profile: String) -> String {
        func state(_ path: String, _ file: AWSSharedConfig?, _ has: Bool, _ section: String) -> String {
            guard file != nil else {
                return "\(path) (\(FileManager.default.fileExists(atPath: path) ? "unreadable" : "no such file"))"
            }
            return has ? "\(path) \(section) (no credentials)" : "\(path) (no \(section) section)"
        }
        return state(credentialsPath, credentialsFile, credentialsFile?.credentialsProfile(profile) != nil, "[\(profile)]")
            + ", " + state(configPath, configFile, configFile?.configProfile(profile) != nil,
                           profile == "default" ? "[default]" : "[profile \(profile)]")
    }
}

extension Dictionary where Key == String, Value == String {
    /// The value, trimmed; nil when missing or blank.
    func nonEmpty(_ key: String) -> String? {
        guard let v = self[key]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
        return v
    }
}
