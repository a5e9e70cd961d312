/// The two STS calls the credential chain needs, over the AWS query protocol (form POST, XML
/// answer): `AssumeRole`, signed with SigV4 (service `sts`) by the source's keys, and
/// `AssumeRoleWithWebIdentity`, unsigned (the web identity token is the proof).
///
/// Endpoint, as the SDKs choose it: `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else
/// `https://sts.REGION.amazonaws.com` (regional), or
/// `https://sts.amazonaws.com` when no region is known or `AWS_STS_REGIONAL_ENDPOINTS=legacy`.
/// soak's `--endpoint-url` is S3's and never reaches STS.
import Foundation
import SoakCore

struct STSClient: Sendable {
    let context: CredentialContext
    /// STS answers in well under a second; this bounds a hung connection.
    static let timeout: Double = 10
    static let apiVersion = "2011-06-15"
    /// The region the global endpoint signs for.
    static let globalRegion = "us-east-1"
    /// A few quick attempts: a refresh that still fails is retried later by the keeper's own
    /// backoff, and a first resolve should fail within seconds, not minutes.
    static let retry = RetryPolicy(maxAttempts: 3, baseDelay: 0.5, maxDelay: 2)
    /// STS error codes worth another attempt (botocore's throttling codes and IDPCommunicationError,
    /// the identity provider being briefly unreachable).
    static let transientCodes: Set<String> = ["Throttling", "ThrottlingException", "RequestLimitExceeded",
                                              "TooManyRequestsException", "IDPCommunicationError",
                                              "ServiceUnavailable", "InternalFailure", "RequestTimeout"]

    /// True for an answer worth another attempt: 5xx, 429 and the throttling codes.
    static func isTransient(status: Int, code: String?) -> Bool {
        status >= 500 || status == 429 || code.map { transientCodes.contains($0) } == true
    }

    /// The endpoint URL (no trailing slash) and the region requests are signed for.
    func endpoint() -> (url: String, signingRegion: String) {
        let region = context.region.flatMap { $0.isEmpty ? nil : $0 }
        if let custom = context.env("AWS_ENDPOINT_URL_STS") ?? context.env("AWS_ENDPOINT_URL") {
            return (custom.hasSuffix("/") ? String(custom.dropLast()) : custom, region ?? Self.globalRegion)
        }
        guard let region, context.env("AWS_STS_REGIONAL_ENDPOINTS")?.lowercased() != "legacy" else {
            return ("https://sts.amazonaws.com", Self.globalRegion)
        }
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        return ("https://sts.\(region).\(suffix)", region)
    }

    struct RoleRequest: Sendable {
        var roleArn: String
        var sessionName: String
        var externalId: String? = nil
        var durationSeconds: Int? = nil
    }

    /// `AssumeRole`, signed with `source`.
    func assumeRole(_ r: RoleRequest, source: Credentials, what: String) throws -> Credentials {
        var fields: [(String, String)] = [("Action", "AssumeRole"), ("Version", Self.apiVersion),
                                          ("RoleArn", r.roleArn), ("RoleSessionName", r.sessionName)]
        if let d = r.durationSeconds { fields.append(("DurationSeconds", String(d))) }
        if let e = r.externalId { fields.append(("ExternalId", e)) }
        return try call(fields, action: "AssumeRole", signWith: source, what: what)
    }

    /// `AssumeRoleWithWebIdentity` with `token` (unsigned).
    func assumeRoleWithWebIdentity(_ r: RoleRequest, token: String, what: String) throws -> Credentials {
        var fields: [(String, String)] = [("Action", "AssumeRoleWithWebIdentity"), ("Version", Self.apiVersion),
                                          ("RoleArn", r.roleArn), ("RoleSessionName", r.sessionName),
                                          ("WebIdentityToken", token)]
        if let d = r.durationSeconds { fields.append(("DurationSeconds", String(d))) }
        return try call(fields, action: "AssumeRoleWithWebIdentity", signWith: nil, what: what)
    }

    private func call(_ fields: [(String, String)], action: String, signWith: Credentials?,
                      what: String) throws -> Credentials {
        let (base, signingRegion) = endpoint()
        guard let url = URL(string: base + "/"), let host = url.host, url.scheme == "https" || url.scheme == "http" else {
            throw CredentialsError(.invalidConfig, "\(what): STS endpoint '\(base)' is not an http(s) URL")
        }
        let body = CredentialHTTP.formBody(fields)
        var headers: [(name: String, value: String)] = [
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]
        if let source = signWith {
            let hostHeader = url.port.map { "\(host):\($0)" } ?? host
            let signer = SigV4Signer(credentials: source, region: signingRegion, service: "sts")
            // The path as it goes on the wire: an endpoint URL may carry one (a gateway).
            let path = URLComponents(string: base + "/")?.percentEncodedPath ?? "/"
            let signed = signer.sign(method: "POST", canonicalURI: path.isEmpty ? "/" : path, query: [],
                                     headers: [("Host", hostHeader), ("Content-Type", headers[0].value)],
                                     payloadHash: SigV4Signer.sha256Hex(Data(body)), date: context.now())
            headers += signed.map { (name: $0.0, value: $0.1) }
        }
        // Transient failures (no answer, 5xx, throttling) are retried a few times with the
        // project's jittered backoff; the last one is reported with the attempts it took.
        var attempts = 0
        var random = SystemRandomNumberGenerator()
        let response: CredentialHTTPResponse
        do {
            response = try withRetries(policy: Self.retry, clock: SystemClock(), random: &random,
                                       isRetryable: { ($0 as? STSAttemptError)?.transient ?? false }) {
                attempts += 1
                let r: CredentialHTTPResponse
                do {
                    r = try CredentialHTTP.send(method: "POST", url: base + "/", headers: headers, body: body,
                                                timeout: Self.timeout, transport: context.transport)
                } catch let e as CredentialHTTPError {
                    throw STSAttemptError(message: "failed: \(e)", transient: true)
                }
                guard r.status == 200 else {
                    let error = Self.parseError(r.body)
                    let detail = error.map { "\($0.code): \($0.message)" } ?? "no STS error document"
                    throw STSAttemptError(message: "answered HTTP \(r.status): " + PathError.printable(detail),
                                          transient: Self.isTransient(status: r.status, code: error?.code))
                }
                return r
            }
        } catch let e as STSAttemptError {
            let tries = attempts > 1 ? " (after \(attempts) attempts)" : ""
            throw CredentialsError(.failed, "\(what): STS \(action) \(e.message)\(tries)")
        }
        return try Self.parseCredentials(response.body, action: action, what: what)
    }

    /// The `<Credentials>` of an `…Response/…Result` document.
    static func parseCredentials(_ body: Data, action: String, what: String) throws -> Credentials {
        var fields: [String: String] = [:]
        var root: String? = nil
        do {
            try XMLLeafReader.read(body, open: { path in
                if path.count == 1 { root = path[0] }
            }, close: { path, text in
                if path.count == 4, path[1] == action + "Result", path[2] == "Credentials" { fields[path[3]] = text }
            })
        } catch {
            throw CredentialsError(.failed, "\(what): STS \(action) answer is not XML: \(error)")
        }
        guard root == action + "Response" else {
            throw CredentialsError(.failed, "\(what): STS \(action) answer has no \(action)Response")
        }
        return try CredentialParsing.make(source: "\(what): STS \(action)", accessKeyId: fields["AccessKeyId"],
                                          secretAccessKey: fields["SecretAccessKey"],
                                          sessionToken: fields["SessionToken"], expiration: fields["Expiration"])
    }

    /// `<ErrorResponse><Error><Code>…</Code><Message>…</Message></Error></ErrorResponse>`.
    static func parseError(_ body: Data) -> (code: String, message: String)? {
        var fields: [String: String] = [:]
        try? XMLLeafReader.read(body, open: { _ in }, close: { path, text in
            if path.count == 3, path[0] == "ErrorResponse", path[1] == "Error" { fields[path[2]] = text }
        })
        guard let code = fields["Code"]?.trimmingCharacters(in: .whitespacesAndNewlines), !code.isEmpty else { return nil }
        return (code, fields["Message"]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
    }

    /// botocore's default session name shape, with soak's prefix.
    static func defaultSessionName(now: Date) -> String {
        "soak-session-\(Int(now.timeIntervalSince1970))"
    }
}

/// One failed STS attempt, before it becomes a `CredentialsError` (no secret in `message`).
struct STSAttemptError: Error {
    var message: String
    var transient: Bool
}
