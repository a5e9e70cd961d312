/// The default credential provider chain, in botocore's order (users compare soak with the aws
/// cli):
/// 1. static keys in the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
///    `AWS_SESSION_TOKEN`);
/// 2. the profile's `role_arn` (AssumeRole from `source_profile` or `credential_source`);
/// 3. web identity from the environment (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`);
/// 4. the rest of the profile: its web identity, SSO (refused), static keys,
///    `credential_process`;
/// 5. container credentials (ECS, EKS Pod Identity);
/// 6. EC2 instance metadata (IMDSv2).
/// The profile is `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`; a profile named by a
/// variable must exist. An explicit `--profile P` uses only P's providers (botocore also keeps
/// the container and instance-metadata sources after an explicit profile; soak does not, so
/// `--profile` never silently picks up the machine's role).
import Foundation

public enum DefaultCredentialChain {
    /// The chain for `context`; `explicitProfile` is `--profile` (or the `profile=` mount option).
    public static func make(context: CredentialContext, explicitProfile: String? = nil) throws -> CredentialChain {
        let files = AWSProfileFiles(context: context)
        if let p = explicitProfile?.trimmingCharacters(in: .whitespacesAndNewlines), !p.isEmpty {
            return CredentialChain([ProfileCredentialProvider(context: context, profile: p, part: .all, explicit: true)],
                                   notFoundHint: "profile '\(p)' has none: " + files.describe(p))
        }
        let profile = AWSSharedConfig.profileName(environment: context.environment)
        let explicit = AWSSharedConfig.profileIsExplicit(environment: context.environment)
        let imds = InstanceMetadataCredentialProvider(context: context)
        var hint = "profile '\(profile)': " + files.describe(profile)
        if context.flag("AWS_EC2_METADATA_DISABLED") { hint += "; EC2 instance metadata disabled (AWS_EC2_METADATA_DISABLED)" }
        return CredentialChain([
            EnvironmentCredentialProvider(context: context),
            ProfileCredentialProvider(context: context, profile: profile, part: .assumeRole, explicit: explicit),
            WebIdentityCredentialProvider.fromEnvironment(context),
            ProfileCredentialProvider(context: context, profile: profile, part: .rest, explicit: explicit),
            ContainerCredentialProvider(context: context),
            imds,
        ], notFoundHint: hint)
    }
}
