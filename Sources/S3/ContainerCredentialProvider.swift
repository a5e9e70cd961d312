/// Container credentials: ECS task roles and EKS Pod Identity.
///
/// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (a path on the ECS agent at 169.254.170.2) wins over
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI`. A FULL_URI over plain http may only name a host that
/// cannot be somebody else's: loopback (127.0.0.0/8, ::1, `localhost`), the ECS agent
/// (169.254.170.2) or the EKS Pod Identity agent (169.254.170.23, fd00:ec2::23); over https any
/// host. The `Authorization` header comes from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, read on
/// every load because the agent rotates it, else `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
///
/// The answer is JSON: `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`. Like botocore, a
/// failed fetch is tried three times (2 s each, 1 s apart); a 4xx answer is final.
import Foundation
import SoakCore

public struct ContainerCredentialProvider: CredentialProvider {
    public let context: CredentialContext
    /// The ECS agent's base URL for RELATIVE_URI (fixed by the SDKs; a parameter for tests).
    let relativeBase: String
    let timeout: Double
    let attempts: Int
    let retryDelay: Double

    public static let ecsAgentBase = "http://169.254.170.2"
    /// botocore's ContainerMetadataFetcher settings.
    public static let defaultTimeout: Double = 2
    public static let defaultAttempts = 3
    public static let defaultRetryDelay: Double = 1
    /// Hosts a FULL_URI may name over plain http (besides loopback addresses).
    static let allowedHTTPHosts: Set<String> = ["169.254.170.2", "169.254.170.23", "fd00:ec2::23", "localhost"]

    public init(context: CredentialContext, relativeBase: String = ContainerCredentialProvider.ecsAgentBase,
                timeout: Double = defaultTimeout, attempts: Int = defaultAttempts,
                retryDelay: Double = defaultRetryDelay) {
        self.context = context
        self.relativeBase = relativeBase
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.retryDelay = retryDelay
    }

    public var name: String { "container credentials" }

    /// True when either variable is set (the chain's `credential_source = EcsContainer` needs it).
    public var isConfigured: Bool {
        context.env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != nil
            || context.env("AWS_CONTAINER_CREDENTIALS_FULL_URI") != nil
    }

    /// The URL to ask, or nil when neither variable is set; throws for a FULL_URI not allowed.
    func endpoint() throws -> String? {
        if let relative = context.env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            return relativeBase + (relative.hasPrefix("/") ? relative : "/" + relative)
        }
        guard let full = context.env("AWS_CONTAINER_CREDENTIALS_FULL_URI") else { return nil }
        guard let url = URLComponents(string: full), let scheme = url.scheme?.lowercased(),
              let host = url.host, !host.isEmpty else {
            throw CredentialsError(.invalidConfig, "\(name): AWS_CONTAINER_CREDENTIALS_FULL_URI "
                                   + "'\(PathError.printable(full))' is not a URL")
        }
        switch scheme {
        case "https": return full
        case "http":
            guard Self.isAllowedHTTPHost(host) else {
                throw CredentialsError(.invalidConfig, "\(name): AWS_CONTAINER_CREDENTIALS_FULL_URI host '\(host)' "
                                       + "is not allowed over http (only loopback, 169.254.170.2, 169.254.170.23 "
                                       + "or fd00:ec2::23; use https for any other host)")
            }
            return full
        default:
            throw CredentialsError(.invalidConfig, "\(name): AWS_CONTAINER_CREDENTIALS_FULL_URI must be http or https, "
                                   + "not '\(PathError.printable(scheme))'")
        }
    }

    /// Loopback or one of the agents' addresses. Names are not resolved (as in botocore), so a
    /// DNS answer cannot widen the list.
    static func isAllowedHTTPHost(_ rawHost: String) -> Bool {
        var host = rawHost.lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if allowedHTTPHosts.contains(host) { return true }
        if host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            let b = withUnsafeBytes(of: v6) { Array($0) }
            if b == [UInt8](repeating: 0, count: 15) + [1] { return true }
            // fd00:ec2::23 written another way.
            return b == [0xfd, 0x00, 0x0e, 0xc2] + [UInt8](repeating: 0, count: 11) + [0x23]
        }
        return false
    }

    /// The Authorization header value, re-read from the token file on every call.
    func authorization() throws -> String? {
        var token: String? = nil
        if let file = context.env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CredentialsError(.failed, "\(name): cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(file)")
            }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            token = context.env("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        }
        guard let token, !token.isEmpty else { return nil }
        if token.contains(where: { $0 == "\r" || $0 == "\n" }) {
            throw CredentialsError(.invalidConfig, "\(name): the authorization token holds a line break")
        }
        return token
    }

    public func load() throws -> Credentials? {
        guard let url = try endpoint() else { return nil }
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        if let token = try authorization() { headers.append(("Authorization", token)) }
        var lastProblem = ""
        for attempt in 1...attempts {
            if attempt > 1 { Thread.sleep(forTimeInterval: retryDelay) }
            do {
                let r = try CredentialHTTP.send(method: "GET", url: url, headers: headers, timeout: timeout,
                                                transport: context.transport)
                if r.status == 200 {
                    let c = try Self.parse(r.body, source: "\(name) (\(url))")
                    try CredentialParsing.checkNotExpired(c, source: "\(name) (\(url))", now: context.now())
                    return c
                }
                lastProblem = "HTTP \(r.status)" + Self.errorDetail(r.body)
                if (400..<500).contains(r.status) { break }
            } catch let e as CredentialHTTPError {
                lastProblem = e.reason
            }
        }
        throw CredentialsError(.failed, "\(name): \(url) answered \(lastProblem)")
    }

    struct Document: Decodable {
        var AccessKeyId: String?
        var SecretAccessKey: String?
        var Token: String?
        var Expiration: String?
        var Code: String?
        var Message: String?
    }

    static func parse(_ body: Data, source: String) throws -> Credentials {
        guard let doc = try? JSONDecoder().decode(Document.self, from: body) else {
            throw CredentialsError(.failed, "\(source): the answer is not a JSON credentials document")
        }
        return try CredentialParsing.make(source: source, accessKeyId: doc.AccessKeyId,
                                          secretAccessKey: doc.SecretAccessKey, sessionToken: doc.Token,
                                          expiration: doc.Expiration)
    }

    /// `: Code: Message` from an error document, when there is one (never credentials: a
    /// non-200 answer holds none).
    static func errorDetail(_ body: Data) -> String {
        guard let doc = try? JSONDecoder().decode(Document.self, from: body), let code = doc.Code else { return "" }
        return ": " + PathError.printable(code + (doc.Message.map { ": " + $0 } ?? ""))
    }
}
