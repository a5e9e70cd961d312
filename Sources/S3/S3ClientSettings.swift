/// The S3 settings the aws cli takes from flags, the environment and the shared config file,
/// besides credentials and region: the endpoint URL, the addressing style and the CA bundle.
///
/// Endpoint, botocore's order: `--endpoint-url`; then, unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
/// (or the profile's `ignore_configured_endpoint_urls`) is true, AWS_ENDPOINT_URL_S3,
/// AWS_ENDPOINT_URL, `endpoint_url` under `s3 =` in the profile's `[services NAME]` section
/// (`services = NAME` in the profile), the profile's own `endpoint_url`; else the AWS default.
/// Addressing: `--addressing`, else the profile's `s3 =` / `addressing_style`, else auto.
/// CA bundle: `--ca-bundle`, else AWS_CA_BUNDLE, else the profile's `ca_bundle`; it must be a
/// readable file, checked here so a typo is one line up front rather than a TLS error per request.
import Foundation
import SoakCore

public struct S3ClientSettings: Sendable, Equatable {
    /// The endpoint URL to use, nil for the AWS default of the region.
    public var endpointURL: String?
    /// Where `endpointURL` came from (for a debug line).
    public var endpointSource: String
    public var addressing: Addressing
    /// A readable CA bundle file, or nil for the system's trust store.
    public var caBundle: String?

    /// - Parameters:
    ///   - profile: an explicit `--profile`, else AWS_PROFILE / AWS_DEFAULT_PROFILE / `default`.
    ///   - addressingFlag: `--addressing` when given (nil lets the profile choose).
    public static func resolve(endpointFlag: String?, addressingFlag: String?, caBundleFlag: String?,
                               environment: [String: String], home: String, profile: String?) throws
        -> S3ClientSettings {
        func clean(_ s: String?) -> String? {
            guard let v = s?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        let path = AWSSharedConfig.configFilePath(environment: environment, home: home)
        let config = AWSSharedConfig.load(path: path)
        let name = clean(profile) ?? AWSSharedConfig.profileName(environment: environment)
        let section = config?.configProfile(name) ?? [:]
        let where_ = "\(path) [\(name == "default" ? "default" : "profile \(name)")]"

        // Endpoint.
        var endpoint: (String, String)? = clean(endpointFlag).map { ($0, "--endpoint-url") }
        let ignoreConfigured = isTrue(environment["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"])
            ?? isTrue(section["ignore_configured_endpoint_urls"]) ?? false
        if endpoint == nil && !ignoreConfigured {
            if let u = clean(environment["AWS_ENDPOINT_URL_S3"]) { endpoint = (u, "AWS_ENDPOINT_URL_S3") }
            else if let u = clean(environment["AWS_ENDPOINT_URL"]) { endpoint = (u, "AWS_ENDPOINT_URL") }
            else if let services = clean(section["services"]),
                    let u = clean(config?.sections["services \(services)"]?["s3.endpoint_url"]) {
                endpoint = (u, "\(path) [services \(services)] s3")
            } else if let u = clean(section["endpoint_url"]) {
                endpoint = (u, where_)
            }
        }

        // Addressing.
        let addressing: Addressing
        if let raw = clean(addressingFlag) {
            guard let a = Addressing(rawValue: raw) else {
                throw S3EndpointError("invalid --addressing '\(raw)': use path, virtual or auto")
            }
            addressing = a
        } else if let raw = clean(section["s3.addressing_style"]) {
            guard let a = Addressing(rawValue: raw.lowercased()) else {
                throw S3EndpointError("invalid addressing_style '\(raw)' in \(where_): use path, virtual or auto")
            }
            addressing = a
        } else {
            addressing = .auto
        }

        // CA bundle.
        var ca: (String, String)? = clean(caBundleFlag).map { ($0, "--ca-bundle") }
        if ca == nil, let p = clean(environment["AWS_CA_BUNDLE"]) { ca = (p, "AWS_CA_BUNDLE") }
        if ca == nil, let p = clean(section["ca_bundle"]) { ca = (p, "ca_bundle in \(where_)") }
        var caPath: String? = nil
        if let (p, source) = ca {
            let expanded = AWSSharedConfig.expandTilde(p, home: home)
            try checkReadableFile(expanded, what: "CA bundle", source: source)
            caPath = expanded
        }
        return S3ClientSettings(endpointURL: endpoint?.0, endpointSource: endpoint?.1 ?? "default",
                                addressing: addressing, caBundle: caPath)
    }

    /// true/false as botocore reads booleans; nil when unset or not a boolean.
    static func isTrue(_ s: String?) -> Bool? {
        switch s?.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true": return true
        case "false": return false
        default: return nil
        }
    }

    /// Throws a one-line error unless `path` opens for reading as a regular file.
    static func checkReadableFile(_ path: String, what: String, source: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let why = String(cString: strerror(errno))
            throw S3EndpointError("cannot read the \(what) '\(PathError.printable(path))' (from \(source)): \(why)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw S3EndpointError("the \(what) '\(PathError.printable(path))' (from \(source)) is not a regular file")
        }
    }
}
