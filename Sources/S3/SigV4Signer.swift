/// AWS Signature Version 4 (header-based), as S3 expects it.
///
/// Signing is four pure steps, each exposed for tests:
/// 1. `canonicalRequest`: method, the already-encoded path, the canonical query (RFC 3986
///    encoded keys and values, sorted by key then value), the canonical headers (names
///    lowercased and sorted, values trimmed with inner runs of spaces collapsed, repeated names
///    joined with commas), the signed-header list and the payload hash, one per line.
/// 2. `stringToSign`: `AWS4-HMAC-SHA256`, the timestamp, the scope
///    `yyyymmdd/region/service/aws4_request` and the SHA-256 of step 1.
/// 3. The signing key: HMAC-SHA256 chained over "AWS4"+secret, date, region, service,
///    "aws4_request".
/// 4. The signature: hex HMAC-SHA256 of step 2 under that key.
///
/// `sign` adds what S3 requires on top of the caller's headers (which must include `Host`):
/// `x-amz-date`, `x-amz-content-sha256` and, with temporary credentials, `x-amz-security-token`,
/// signs all of them, and returns the headers to add to the request (those three plus
/// `Authorization`). No URI normalisation is done: S3 object keys are signed exactly as sent.
import Crypto
import Foundation
import SoakCore

public struct SigV4Signer: Sendable {
    public let credentials: Credentials
    public let region: String
    public let service: String

    /// Hex SHA-256 of the empty string: the payload hash of every bodiless request.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// The payload hash S3 accepts when the body is not signed.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    public static let algorithm = "AWS4-HMAC-SHA256"

    public init(credentials: Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    // MARK: - Signing a request

    /// Signs a request and returns the headers to add to it: `Authorization`, `x-amz-date`,
    /// `x-amz-content-sha256` and (with a session token) `x-amz-security-token`.
    ///
    /// - Parameters:
    ///   - canonicalURI: the request path exactly as it goes on the wire (already percent-encoded).
    ///   - query: raw (unencoded) query parameters; encoded and sorted here.
    ///   - headers: every header that will be sent and should be signed, including `Host`.
    ///     Any `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` or `Authorization`
    ///     in it is replaced by the signer's own.
    ///   - payloadHash: hex SHA-256 of the body (`emptyPayloadHash` for none) or `UNSIGNED-PAYLOAD`.
    public func sign(method: String, canonicalURI: String, query: [(String, String)],
                     headers: [(String, String)], payloadHash: String, date: Date) -> [(String, String)] {
        let added = signingHeaders(payloadHash: payloadHash, date: date)
        let replaced: Set<String> = ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization"]
        let all = headers.filter { !replaced.contains($0.0.lowercased()) } + added
        let auth = authorization(method: method, canonicalURI: canonicalURI, query: query, headers: all,
                                 payloadHash: payloadHash, date: date)
        return [("Authorization", auth)] + added
    }

    /// The S3 headers `sign` adds before signing (everything it returns except `Authorization`).
    public func signingHeaders(payloadHash: String, date: Date) -> [(String, String)] {
        var h: [(String, String)] = [("x-amz-date", UTCTime.amzDate(date)), ("x-amz-content-sha256", payloadHash)]
        if let token = credentials.sessionToken, !token.isEmpty {
            h.append(("x-amz-security-token", token))
        }
        return h
    }

    /// The `Authorization` value for a request whose headers are exactly `headers` (all signed,
    /// nothing added). `sign` uses this after adding its headers; tests use it directly for the
    /// generic test-suite vectors, which sign only `host` and `x-amz-date`.
    public func authorization(method: String, canonicalURI: String, query: [(String, String)],
                              headers: [(String, String)], payloadHash: String, date: Date) -> String {
        let creq = Self.canonicalRequest(method: method, canonicalURI: canonicalURI, query: query,
                                         headers: headers, payloadHash: payloadHash)
        let sts = stringToSign(canonicalRequest: creq.request, date: date)
        let sig = signature(stringToSign: sts, date: date)
        return "\(Self.algorithm) Credential=\(credentials.accessKeyId)/\(scope(date)), "
            + "SignedHeaders=\(creq.signedHeaders), Signature=\(sig)"
    }

    // MARK: - The steps

    /// `yyyymmdd/region/service/aws4_request`
    public func scope(_ date: Date) -> String {
        "\(UTCTime.dateStamp(date))/\(region)/\(service)/aws4_request"
    }

    /// Step 1: the canonical request text and the `;`-joined signed header names.
    public static func canonicalRequest(method: String, canonicalURI: String, query: [(String, String)],
                                        headers: [(String, String)], payloadHash: String)
        -> (request: String, signedHeaders: String) {
        let h = canonicalHeaders(headers)
        let uri = canonicalURI.isEmpty ? "/" : canonicalURI
        let text = [method.uppercased(), uri, canonicalQueryString(query), h.canonical, h.signedHeaders, payloadHash]
            .joined(separator: "\n")
        return (text, h.signedHeaders)
    }

    /// Step 2.
    public func stringToSign(canonicalRequest: String, date: Date) -> String {
        [Self.algorithm, UTCTime.amzDate(date), scope(date), Self.sha256Hex(canonicalRequest)]
            .joined(separator: "\n")
    }

    /// Step 3. The key depends only on the day, region, service and secret, so it is derived
    /// once per day and cached (four HMACs per request were 3% of client CPU on small objects).
    public func signingKey(date: Date) -> SymmetricKey {
        let cacheKey = "\(UTCTime.dateStamp(date))/\(region)/\(service)/\(credentials.secretAccessKey)"
        if let k = SigningKeyCache.shared.get(cacheKey) { return k }
        let k = deriveSigningKey(date: date)
        SigningKeyCache.shared.put(cacheKey, k)
        return k
    }

    func deriveSigningKey(date: Date) -> SymmetricKey {
        let kSecret = SymmetricKey(data: Data(("AWS4" + credentials.secretAccessKey).utf8))
        let kDate = Self.hmac(kSecret, UTCTime.dateStamp(date))
        let kRegion = Self.hmac(SymmetricKey(data: kDate), region)
        let kService = Self.hmac(SymmetricKey(data: kRegion), service)
        let kSigning = Self.hmac(SymmetricKey(data: kService), "aws4_request")
        return SymmetricKey(data: kSigning)
    }

    /// Step 4: lowercase hex.
    public func signature(stringToSign: String, date: Date) -> String {
        Self.hex(Self.hmac(signingKey(date: date), stringToSign))
    }

    // MARK: - Canonicalisation helpers

    /// `key=value` pairs, RFC 3986 encoded, sorted by encoded key then encoded value (byte order),
    /// joined with `&`. A parameter without a value is written `key=`.
    public static func canonicalQueryString(_ query: [(String, String)]) -> String {
        query.map { (uriEncode($0.0, encodeSlash: true), uriEncode($0.1, encodeSlash: true)) }
            .sorted { a, b in
                if a.0 != b.0 { return bytesLess(a.0, b.0) }
                return bytesLess(a.1, b.1)
            }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Canonical header block (each `name:value` followed by a newline) and signed header list.
    public static func canonicalHeaders(_ headers: [(String, String)]) -> (canonical: String, signedHeaders: String) {
        var order: [String] = []
        var values: [String: [String]] = [:]
        for (name, value) in headers {
            let n = name.trimmingASCIIWhitespace().lowercased()
            if values[n] == nil { order.append(n) }
            values[n, default: []].append(canonicalHeaderValue(value))
        }
        let names = order.sorted(by: bytesLess)
        let canonical = names.map { "\($0):\(values[$0]!.joined(separator: ","))\n" }.joined()
        return (canonical, names.joined(separator: ";"))
    }

    /// Trims leading/trailing whitespace and collapses every run of spaces/tabs (and folded
    /// line breaks) inside into a single space.
    public static func canonicalHeaderValue(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        var pendingSpace = false
        for u in value.unicodeScalars {
            if u == " " || u == "\t" || u == "\n" || u == "\r" {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// RFC 3986 percent-encoding over UTF-8 bytes: `A-Z a-z 0-9 - _ . ~` are kept, every other
    /// byte becomes `%XX` (uppercase hex). `/` is kept when `encodeSlash` is false (object paths).
    public static func uriEncode(_ s: String, encodeSlash: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for c in s.utf8 {
            if isUnreserved(c) || (c == UInt8(ascii: "/") && !encodeSlash) {
                out.append(c)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(c >> 4)])
                out.append(hexDigits[Int(c & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isUnreserved(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
            || c == 0x2D || c == 0x5F || c == 0x2E || c == 0x7E
    }

    /// Byte-wise (not locale or Unicode-collation) ordering, as SigV4 requires.
    static func bytesLess(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    // MARK: - Crypto helpers

    public static func sha256Hex(_ s: String) -> String { sha256Hex(Data(s.utf8)) }

    public static func sha256Hex(_ data: Data) -> String { hex(Array(SHA256.hash(data: data))) }

    static func hmac(_ key: SymmetricKey, _ message: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: key))
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Derived signing keys by day/region/service/secret (a handful of entries per process).
final class SigningKeyCache: @unchecked Sendable {
    // @unchecked: `keys` is guarded by `lock`.
    static let shared = SigningKeyCache()
    /// Entries kept at most: a process uses one or two at a time (a day boundary).
    static let capacity = 8
    private let lock = NSLock()
    private var keys: [String: SymmetricKey] = [:]

    func get(_ k: String) -> SymmetricKey? { lock.lock(); defer { lock.unlock() }; return keys[k] }

    func put(_ k: String, _ v: SymmetricKey) {
        lock.lock(); defer { lock.unlock() }
        if keys.count >= Self.capacity { keys.removeAll() }
        keys[k] = v
    }
}
