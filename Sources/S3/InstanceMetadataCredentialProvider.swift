/// EC2 instance role credentials from the instance metadata service (IMDS).
///
/// IMDSv2: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`, then
/// `GET /latest/meta-data/iam/security-credentials/` (the role name) and `GET …/ROLE` (a JSON
/// document) with `X-aws-ec2-metadata-token`. Only when the PUT answers 403, 404 or 405 (an
/// old IMDS or a proxy that refuses PUT) are the GETs sent without a token (IMDSv1), and not at
/// all with `AWS_EC2_METADATA_V1_DISABLED=true`.
///
/// Off EC2 nothing answers, so the probe is quick: one attempt with a 1 s deadline (botocore's
/// defaults), and no answer means "not configured here" (nil), not an error.
/// `AWS_EC2_METADATA_DISABLED=true` turns the source off; `AWS_EC2_METADATA_SERVICE_ENDPOINT`
/// replaces the address, else `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE` (IPv4 or IPv6) picks it.
import Foundation
import SoakCore

public struct InstanceMetadataCredentialProvider: CredentialProvider {
    public let context: CredentialContext
    let timeout: Double

    public static let ipv4Endpoint = "http://169.254.169.254"
    public static let ipv6Endpoint = "http://[fd00:ec2::254]"
    /// botocore's metadata_service_timeout: off EC2 the whole chain waits this long once.
    public static let defaultTimeout: Double = 1
    /// The session token's lifetime asked for (the SDKs ask for the 6 h maximum).
    static let tokenTTLSeconds = 21600
    static let tokenPath = "/latest/api/token"
    static let credentialsPath = "/latest/meta-data/iam/security-credentials/"

    public init(context: CredentialContext, timeout: Double = defaultTimeout) {
        self.context = context
        self.timeout = timeout
    }

    public var name: String { "EC2 instance metadata" }

    /// The base URL (no trailing slash), or nil when disabled; throws for a bad mode.
    func endpoint() throws -> String? {
        if context.flag("AWS_EC2_METADATA_DISABLED") { return nil }
        if let custom = context.env("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            guard let u = URLComponents(string: custom), u.scheme == "http" || u.scheme == "https", u.host != nil else {
                throw CredentialsError(.invalidConfig, "\(name): AWS_EC2_METADATA_SERVICE_ENDPOINT "
                                       + "'\(PathError.printable(custom))' is not an http(s) URL")
            }
            return custom.hasSuffix("/") ? String(custom.dropLast()) : custom
        }
        switch context.env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")?.lowercased() {
        case nil, "ipv4": return Self.ipv4Endpoint
        case "ipv6": return Self.ipv6Endpoint
        case let other?:
            throw CredentialsError(.invalidConfig, "\(name): AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE "
                                   + "'\(PathError.printable(other))' is neither IPv4 nor IPv6")
        }
    }

    public func load() throws -> Credentials? {
        guard let base = try endpoint() else { return nil }
        // Step 1: a session token (IMDSv2), or the reason to fall back to IMDSv1.
        guard let tokenAnswer = tokenRequest(base) else {
            return nil  // nothing answers: not on EC2 (or IMDS is firewalled off)
        }
        var tokenHeader: [(name: String, value: String)] = []
        switch tokenAnswer.status {
        case 200:
            let token = String(decoding: tokenAnswer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty, !token.contains(where: { $0 == "\r" || $0 == "\n" }) else {
                throw CredentialsError(.failed, "\(name): the IMDSv2 token answer is empty or malformed")
            }
            tokenHeader = [("X-aws-ec2-metadata-token", token)]
        case 403, 404, 405:
            if context.flag("AWS_EC2_METADATA_V1_DISABLED") {
                throw CredentialsError(.failed, "\(name): the IMDSv2 token request answered HTTP \(tokenAnswer.status) "
                                       + "and AWS_EC2_METADATA_V1_DISABLED forbids falling back to IMDSv1")
            }
        default:
            throw CredentialsError(.failed, "\(name): the IMDSv2 token request answered HTTP \(tokenAnswer.status)")
        }
        // Step 2: the role name.
        let roleAnswer = try get(base + Self.credentialsPath, tokenHeader, what: "the instance role")
        if roleAnswer.status == 404 { return nil }  // an instance without a role
        let role = String(decoding: roleAnswer.body, as: UTF8.self)
            .split(whereSeparator: { $0 == "\n" || $0 == "\r" }).first
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard !role.isEmpty, !role.contains("/") else {
            throw CredentialsError(.failed, "\(name): the instance has no IAM role name to read")
        }
        // Step 3: the role's credentials.
        let credsAnswer = try get(base + Self.credentialsPath + role, tokenHeader, what: "role '\(role)'")
        guard credsAnswer.status == 200 else {
            throw CredentialsError(.failed, "\(name): role '\(role)' answered HTTP \(credsAnswer.status)")
        }
        let c = try Self.parse(credsAnswer.body, source: "\(name) (role '\(role)')")
        try CredentialParsing.checkNotExpired(c, source: "\(name) (role '\(role)')", now: context.now())
        return c
    }

    /// The token PUT, or nil when nothing answered (now, or within the last few seconds:
    /// `InstanceMetadataReachability`).
    func tokenRequest(_ base: String) -> CredentialHTTPResponse? {
        if InstanceMetadataReachability.recentlySilent(base) { return nil }
        do {
            let r = try send("PUT", base + Self.tokenPath,
                             [("X-aws-ec2-metadata-token-ttl-seconds", String(Self.tokenTTLSeconds))])
            InstanceMetadataReachability.record(base, timedOut: false)
            return r
        } catch {
            InstanceMetadataReachability.record(base, timedOut: (error as? CredentialHTTPError)?.timedOut ?? false)
            return nil
        }
    }

    private func send(_ method: String, _ url: String, _ headers: [(name: String, value: String)]) throws
        -> CredentialHTTPResponse {
        try CredentialHTTP.send(method: method, url: url, headers: headers, timeout: timeout,
                                transport: context.transport)
    }

    /// A GET after the token step: IMDS answered once, so silence now is a failure.
    private func get(_ url: String, _ headers: [(name: String, value: String)], what: String) throws
        -> CredentialHTTPResponse {
        let r: CredentialHTTPResponse
        do { r = try send("GET", url, headers) } catch let e as CredentialHTTPError {
            throw CredentialsError(.failed, "\(name): reading \(what) failed: \(e)")
        }
        guard r.status == 200 || r.status == 404 else {
            throw CredentialsError(.failed, "\(name): reading \(what) answered HTTP \(r.status)")
        }
        return r
    }

    struct Document: Decodable {
        var Code: String?
        var AccessKeyId: String?
        var SecretAccessKey: String?
        var Token: String?
        var Expiration: String?
    }

    static func parse(_ body: Data, source: String) throws -> Credentials {
        guard let doc = try? JSONDecoder().decode(Document.self, from: body) else {
            throw CredentialsError(.failed, "\(source): the answer is not a JSON credentials document")
        }
        if let code = doc.Code, code != "Success" {
            throw CredentialsError(.failed, "\(source): Code is '\(PathError.printable(code))', not Success")
        }
        return try CredentialParsing.make(source: source, accessKeyId: doc.AccessKeyId,
                                          secretAccessKey: doc.SecretAccessKey, sessionToken: doc.Token,
                                          expiration: doc.Expiration)
    }
}
