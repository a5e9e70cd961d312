/// Which AWS region to sign for.
///
/// First non-empty of: the `--region` flag, AWS_REGION, AWS_DEFAULT_REGION, `region` in the
/// selected profile of the shared config file (AWS_CONFIG_FILE or ~/.aws/config; the `--profile`
/// one when given, else AWS_PROFILE / AWS_DEFAULT_PROFILE / `default`), the instance's region
/// from EC2 instance metadata (IMDSv2 `placement/region`, with the credential provider's
/// disable/endpoint rules and one 1 s attempt), then `us-east-1`. S3-compatible servers (MinIO,
/// SeaweedFS) usually accept any region, but it is part of the SigV4 scope, so it must match
/// what the server expects. A bucket in another region is found later (`BucketRegion`).
import Foundation

public enum RegionResolver {
    public static let defaultRegion = "us-east-1"

    public static func resolve(flag: String?, environment: [String: String], home: String,
                               profile: String? = nil, instanceMetadata: Bool = true) -> String {
        resolveWithSource(flag: flag, environment: environment, home: home, profile: profile,
                          instanceMetadata: instanceMetadata).region
    }

    /// The region and where it came from (`--region`, `AWS_REGION`, a config path, `EC2 instance
    /// metadata`, `default`). `profile` is an explicit `--profile`; `instanceMetadata` false skips
    /// the IMDS step (tests, and callers that must not wait for it).
    public static func resolveWithSource(flag: String?, environment: [String: String], home: String,
                                         profile: String? = nil, instanceMetadata: Bool = true)
        -> (region: String, source: String) {
        func clean(_ s: String?) -> String? {
            guard let v = s?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        if let r = clean(flag) { return (r, "--region") }
        if let r = clean(environment["AWS_REGION"]) { return (r, "AWS_REGION") }
        if let r = clean(environment["AWS_DEFAULT_REGION"]) { return (r, "AWS_DEFAULT_REGION") }
        let path = AWSSharedConfig.configFilePath(environment: environment, home: home)
        let name = clean(profile) ?? AWSSharedConfig.profileName(environment: environment)
        if let config = AWSSharedConfig.load(path: path),
           let r = clean(config.configProfile(name)?["region"]) {
            return (r, "\(path) [\(name == "default" ? "default" : "profile \(name)")]")
        }
        if instanceMetadata,
           let r = InstanceMetadataCredentialProvider(context: CredentialContext(environment: environment, home: home))
            .region() {
            return (r, "EC2 instance metadata")
        }
        return (defaultRegion, "default")
    }
}
