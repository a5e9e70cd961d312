/// Which AWS region to sign for.
///
/// First non-empty of: the `--region` flag, AWS_REGION, AWS_DEFAULT_REGION, `region` in the
/// selected profile of the shared config file (AWS_CONFIG_FILE or ~/.aws/config; profile from
/// AWS_PROFILE / AWS_DEFAULT_PROFILE / `default`), then `us-east-1`. S3-compatible servers
/// (MinIO, SeaweedFS) usually accept any region, but it is part of the SigV4 scope, so it must
/// match what the server expects.
import Foundation

public enum RegionResolver {
    public static let defaultRegion = "us-east-1"

    public static func resolve(flag: String?, environment: [String: String], home: String) -> String {
        resolveWithSource(flag: flag, environment: environment, home: home).region
    }

    /// The region and where it came from (`--region`, `AWS_REGION`, a config path, `default`).
    public static func resolveWithSource(flag: String?, environment: [String: String], home: String)
        -> (region: String, source: String) {
        func clean(_ s: String?) -> String? {
            guard let v = s?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        if let r = clean(flag) { return (r, "--region") }
        if let r = clean(environment["AWS_REGION"]) { return (r, "AWS_REGION") }
        if let r = clean(environment["AWS_DEFAULT_REGION"]) { return (r, "AWS_DEFAULT_REGION") }
        let path = AWSSharedConfig.configFilePath(environment: environment, home: home)
        let profile = AWSSharedConfig.profileName(environment: environment)
        if let config = AWSSharedConfig.load(path: path),
           let r = clean(config.configProfile(profile)?["region"]) {
            return (r, "\(path) [\(profile == "default" ? "default" : "profile \(profile)")]")
        }
        return (defaultRegion, "default")
    }
}
