import Foundation

/// A failed S3 operation: what was being done, to which bucket/key, and why.
///
/// `isRetryable` is the single place that decides whether a failure is worth another attempt:
/// 5xx, SlowDown, throttling, transport failures, stalls and short bodies are; 4xx are not
/// (except 408/429 and expired credentials, which a refresh replaces), and 412 means the
/// object changed under us.
public struct S3Error: Error, Sendable, Codable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable, Codable {
        /// The server answered with an HTTP error status (see `status`, `code`).
        case http
        /// libcurl failed before a complete response (connect refused, reset, timeout, TLS...).
        case transport(curlCode: Int32)
        /// The server went silent for longer than the worker's stall bound, or sent less than
        /// libcurl's low-speed limit for too long.
        case stalled
        /// The body ended before the promised length.
        case shortBody(expected: Int64, got: Int64)
        /// The response was not what the protocol promises (bad XML, wrong Content-Range...).
        case invalidResponse
        /// Writing the body locally failed (errno).
        case localIO(errno: Int32)
    }

    public var kind: Kind
    public var operation: String
    public var bucket: String
    public var key: String?
    /// HTTP status, 0 when no response was received.
    public var status: Int
    /// S3 error code from the XML body (`NoSuchKey`, `SlowDown`, ...), if any.
    public var code: String?
    public var message: String
    /// Seconds the server asked us to wait (Retry-After), if it said.
    public var retryAfter: Double?
    /// Attempts made in all when this is the last of several (set by whoever retried): the
    /// message names them, so a failure after retries says so in its one line.
    public var attempts: Int?

    public init(kind: Kind, operation: String, bucket: String, key: String? = nil, status: Int = 0,
                code: String? = nil, message: String, retryAfter: Double? = nil) {
        self.kind = kind; self.operation = operation; self.bucket = bucket; self.key = key
        self.status = status; self.code = code; self.message = message; self.retryAfter = retryAfter
    }

    /// True when the object changed since it was listed (If-Match failed).
    public var isPreconditionFailed: Bool { kind == .http && status == 412 }

    /// True when the server asked us to slow down (SlowDown, 503, 429).
    public var isThrottle: Bool {
        kind == .http && (code == "SlowDown" || code == "Throttling" || code == "TooManyRequests"
            || status == 503 || status == 429)
    }

    /// True when S3 refused the credentials as expired or invalid: new ones from a refreshable
    /// source may work (the coordinator's stores refresh and sign once more).
    public var isCredentialRejection: Bool {
        kind == .http && (code == "ExpiredToken" || code == "InvalidToken" || code == "TokenRefreshRequired")
    }

    public var isRetryable: Bool {
        switch kind {
        case .http:
            if status >= 500 { return true }
            // The coordinator refreshes the keys (the engine asks it to), so a later attempt is
            // signed with new ones. InvalidToken is not here: a malformed token stays malformed.
            if code == "ExpiredToken" || code == "TokenRefreshRequired" { return true }
            if status == 408 || isThrottle { return true }
            if code == "RequestTimeout" || code == "SlowDown" || code == "InternalError" { return true }
            return false
        case .transport(let c):
            // Malformed URL / unsupported protocol / bad option never get better with retries.
            return !(c == 1 || c == 3 || c == 4 || c == 43 || c == 48)
        case .stalled, .shortBody: return true
        case .invalidResponse: return true
        case .localIO: return false
        }
    }

    public var description: String {
        var target = "s3://\(bucket)"
        if let key { target += "/\(key)" }
        var why = message
        if let code { why = "\(code): \(message)" }
        if status != 0 { why = "HTTP \(status) \(why)" }
        let tries = attempts.map { $0 > 1 ? " after \($0) attempts" : "" } ?? ""
        return "\(operation) \(target) failed\(tries): \(why)"
    }
}
