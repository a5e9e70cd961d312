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
/// Every step works on UTF-8 bytes in one growing buffer (no String concatenation, sorting or
/// lowercasing of Strings): signing was 10% of a worker's CPU on 64 KiB objects when the steps
/// were built from Strings. The String-returning step functions wrap the byte builders, so the
/// test vectors check the very code that signs.
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
    /// Room reserved for a canonical request up front (a GET with six headers is ~450 bytes).
    static let typicalRequestBytes = 768

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
        var all = headers.filter { !Self.isSignerOwned($0.0) }
        all.append(contentsOf: added)
        let auth = authorization(method: method, canonicalURI: canonicalURI, query: query, headers: all,
                                 payloadHash: payloadHash, date: date)
        return [("Authorization", auth)] + added
    }

    /// True for the headers `sign` writes itself (`x-amz-date`, `x-amz-content-sha256`,
    /// `x-amz-security-token`, `Authorization`), in any letter case.
    public static func isSignerOwned(_ name: String) -> Bool {
        asciiCaselessEqual(name, "x-amz-date") || asciiCaselessEqual(name, "x-amz-content-sha256")
            || asciiCaselessEqual(name, "x-amz-security-token") || asciiCaselessEqual(name, "authorization")
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
        let stamp = UTCTime.amzDateBytes(date)
        var creq: [UInt8] = []
        creq.reserveCapacity(Self.typicalRequestBytes)
        let signed = Self.appendCanonicalRequest(&creq, method: method, canonicalURI: canonicalURI, query: query,
                                                 headers: headers, payloadHash: payloadHash)
        let sts = stringToSignBytes(canonicalRequest: creq, stamp: stamp)
        var out: [UInt8] = []
        out.reserveCapacity(Self.typicalRequestBytes / 2)
        out.append(contentsOf: Self.algorithm.utf8)
        out.append(contentsOf: " Credential=".utf8)
        out.append(contentsOf: credentials.accessKeyId.utf8)
        out.append(UInt8(ascii: "/"))
        appendScope(&out, stamp: stamp)
        out.append(contentsOf: ", SignedHeaders=".utf8)
        out.append(contentsOf: signed)
        out.append(contentsOf: ", Signature=".utf8)
        var mac = signingMAC(stamp: stamp)  // a copy: the cached one stays keyed and empty
        mac.update(data: sts)
        appendLowercaseHex(&out, mac.finalize())
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - The steps

    /// `yyyymmdd/region/service/aws4_request`
    public func scope(_ date: Date) -> String {
        var out: [UInt8] = []
        appendScope(&out, stamp: UTCTime.amzDateBytes(date))
        return String(decoding: out, as: UTF8.self)
    }

    private func appendScope(_ out: inout [UInt8], stamp: [UInt8]) {
        out.append(contentsOf: UTCTime.day(ofStamp: stamp))
        out.append(UInt8(ascii: "/"))
        out.append(contentsOf: region.utf8)
        out.append(UInt8(ascii: "/"))
        out.append(contentsOf: service.utf8)
        out.append(contentsOf: "/aws4_request".utf8)
    }

    /// Step 1: the canonical request text and the `;`-joined signed header names.
    public static func canonicalRequest(method: String, canonicalURI: String, query: [(String, String)],
                                        headers: [(String, String)], payloadHash: String)
        -> (request: String, signedHeaders: String) {
        var out: [UInt8] = []
        let signed = appendCanonicalRequest(&out, method: method, canonicalURI: canonicalURI, query: query,
                                            headers: headers, payloadHash: payloadHash)
        return (String(decoding: out, as: UTF8.self), String(decoding: signed, as: UTF8.self))
    }

    /// Step 1 into `out`; returns the signed header list.
    static func appendCanonicalRequest(_ out: inout [UInt8], method: String, canonicalURI: String,
                                       query: [(String, String)], headers: [(String, String)],
                                       payloadHash: String) -> [UInt8] {
        let newline = UInt8(ascii: "\n")
        if method.utf8.allSatisfy({ $0 < 0x80 }) {
            for c in method.utf8 { out.append(asciiUpper(c)) }
        } else {
            out.append(contentsOf: method.uppercased().utf8)
        }
        out.append(newline)
        if canonicalURI.isEmpty { out.append(UInt8(ascii: "/")) } else { out.append(contentsOf: canonicalURI.utf8) }
        out.append(newline)
        appendCanonicalQuery(&out, query)
        out.append(newline)
        let signed = appendCanonicalHeaders(&out, headers)
        out.append(newline)
        out.append(contentsOf: signed)
        out.append(newline)
        out.append(contentsOf: payloadHash.utf8)
        return signed
    }

    /// Step 2.
    public func stringToSign(canonicalRequest: String, date: Date) -> String {
        String(decoding: stringToSignBytes(canonicalRequest: Array(canonicalRequest.utf8),
                                           stamp: UTCTime.amzDateBytes(date)), as: UTF8.self)
    }

    private func stringToSignBytes(canonicalRequest: [UInt8], stamp: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160)
        out.append(contentsOf: Self.algorithm.utf8)
        out.append(UInt8(ascii: "\n"))
        out.append(contentsOf: stamp)
        out.append(UInt8(ascii: "\n"))
        appendScope(&out, stamp: stamp)
        out.append(UInt8(ascii: "\n"))
        appendLowercaseHex(&out, SHA256.hash(data: canonicalRequest))
        return out
    }

    /// Step 3. The key depends only on the day, region, service and secret, so it is derived
    /// once per day and cached (four HMACs per request were 3% of client CPU on small objects).
    public func signingKey(date: Date) -> SymmetricKey {
        signingKey(stamp: UTCTime.amzDateBytes(date))
    }

    private func signingKey(stamp: [UInt8]) -> SymmetricKey { signingEntry(stamp: stamp).key }

    /// An HMAC already keyed with the signing key (keying hashes two blocks; copies share it).
    private func signingMAC(stamp: [UInt8]) -> HMAC<SHA256> { signingEntry(stamp: stamp).mac }

    private func signingEntry(stamp: [UInt8]) -> SigningKeyCache.Entry {
        let day = String(decoding: UTCTime.day(ofStamp: stamp), as: UTF8.self)
        let cacheKey = SigningKeyCache.Key(day: day, region: region, service: service,
                                           secret: credentials.secretAccessKey)
        if let e = SigningKeyCache.shared.get(cacheKey) { return e }
        let k = deriveSigningKey(day: day)
        let e = SigningKeyCache.Entry(key: k, mac: HMAC<SHA256>(key: k))
        SigningKeyCache.shared.put(cacheKey, e)
        return e
    }

    func deriveSigningKey(day: String) -> SymmetricKey {
        let kSecret = SymmetricKey(data: Data(("AWS4" + credentials.secretAccessKey).utf8))
        let kDate = Self.hmac(kSecret, day)
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
        var out: [UInt8] = []
        appendCanonicalQuery(&out, query)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendCanonicalQuery(_ out: inout [UInt8], _ query: [(String, String)]) {
        guard !query.isEmpty else { return }
        let pairs = query.map { q -> ([UInt8], [UInt8]) in
            var k: [UInt8] = [], v: [UInt8] = []
            appendURIEncoded(&k, q.0, encodeSlash: true)
            appendURIEncoded(&v, q.1, encodeSlash: true)
            return (k, v)
        }.sorted { a, b in
            if a.0 != b.0 { return a.0.lexicographicallyPrecedes(b.0) }
            return a.1.lexicographicallyPrecedes(b.1)
        }
        for (i, p) in pairs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: "&")) }
            out.append(contentsOf: p.0)
            out.append(UInt8(ascii: "="))
            out.append(contentsOf: p.1)
        }
    }

    /// Canonical header block (each `name:value` followed by a newline) and signed header list.
    public static func canonicalHeaders(_ headers: [(String, String)]) -> (canonical: String, signedHeaders: String) {
        var out: [UInt8] = []
        let signed = appendCanonicalHeaders(&out, headers)
        return (String(decoding: out, as: UTF8.self), String(decoding: signed, as: UTF8.self))
    }

    /// Writes the canonical header block into `out` and returns the signed header list. Names
    /// are trimmed and lowercased, sorted by bytes; values of a repeated name keep their order
    /// and are joined with commas.
    static func appendCanonicalHeaders(_ out: inout [UInt8], _ headers: [(String, String)]) -> [UInt8] {
        var items: [(name: [UInt8], value: [UInt8], order: Int)] = []
        items.reserveCapacity(headers.count)
        for (i, (name, value)) in headers.enumerated() {
            var v: [UInt8] = []
            v.reserveCapacity(value.utf8.count)
            appendCanonicalHeaderValue(&v, value)
            items.append((canonicalHeaderName(name), v, i))
        }
        items.sort { a, b in
            if a.name != b.name { return a.name.lexicographicallyPrecedes(b.name) }
            return a.order < b.order
        }
        var signed: [UInt8] = []
        signed.reserveCapacity(items.count * 16)
        var i = 0
        while i < items.count {
            let name = items[i].name
            if !signed.isEmpty { signed.append(UInt8(ascii: ";")) }
            signed.append(contentsOf: name)
            out.append(contentsOf: name)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: items[i].value)
            i += 1
            while i < items.count && items[i].name == name {
                out.append(UInt8(ascii: ","))
                out.append(contentsOf: items[i].value)
                i += 1
            }
            out.append(UInt8(ascii: "\n"))
        }
        return signed
    }

    /// A header name trimmed of ASCII whitespace and lowercased (ASCII fast path; any other
    /// name goes through `String.lowercased()`).
    static func canonicalHeaderName(_ name: String) -> [UInt8] {
        var n: [UInt8] = []
        n.reserveCapacity(name.utf8.count)
        for c in name.utf8 {
            if c >= 0x80 { return Array(name.trimmingASCIIWhitespace().lowercased().utf8) }
            n.append(c)
        }
        var lo = 0, hi = n.count
        while lo < hi && isSpace(n[lo]) { lo += 1 }
        while hi > lo && isSpace(n[hi - 1]) { hi -= 1 }
        if lo > 0 || hi < n.count { n = Array(n[lo..<hi]) }
        for k in n.indices where n[k] >= 0x41 && n[k] <= 0x5A { n[k] += 0x20 }
        return n
    }

    /// Trims leading/trailing whitespace and collapses every run of spaces/tabs (and folded
    /// line breaks) inside into a single space.
    public static func canonicalHeaderValue(_ value: String) -> String {
        var out: [UInt8] = []
        appendCanonicalHeaderValue(&out, value)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendCanonicalHeaderValue(_ out: inout [UInt8], _ value: String) {
        let start = out.count
        var pendingSpace = false
        for c in value.utf8 {
            if isSpace(c) {
                pendingSpace = out.count > start
            } else {
                if pendingSpace { out.append(0x20) }
                pendingSpace = false
                out.append(c)
            }
        }
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// RFC 3986 percent-encoding over UTF-8 bytes: `A-Z a-z 0-9 - _ . ~` are kept, every other
    /// byte becomes `%XX` (uppercase hex). `/` is kept when `encodeSlash` is false (object paths).
    public static func uriEncode(_ s: String, encodeSlash: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        appendURIEncoded(&out, s, encodeSlash: encodeSlash)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendURIEncoded(_ out: inout [UInt8], _ s: String, encodeSlash: Bool) {
        for c in s.utf8 {
            if isUnreserved(c) || (c == UInt8(ascii: "/") && !encodeSlash) {
                out.append(c)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(c >> 4)])
                out.append(hexDigits[Int(c & 0x0F)])
            }
        }
    }

    static func isUnreserved(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
            || c == 0x2D || c == 0x5F || c == 0x2E || c == 0x7E
    }

    /// Space, tab, LF, CR: what header values are trimmed of and collapsed on.
    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }

    static func asciiUpper(_ c: UInt8) -> UInt8 { c >= 0x61 && c <= 0x7A ? c - 0x20 : c }

    /// Equal ignoring ASCII letter case (`b` must be lowercase ASCII).
    static func asciiCaselessEqual(_ a: String, _ b: StaticString) -> Bool {
        guard a.utf8.count == b.utf8CodeUnitCount else { return false }
        return b.withUTF8Buffer { lower in
            var k = 0
            for c in a.utf8 {
                let l = c >= 0x41 && c <= 0x5A ? c + 0x20 : c
                if l != lower[k] { return false }
                k += 1
            }
            return true
        }
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

    static func hex(_ bytes: [UInt8]) -> String { lowercaseHex(bytes) }
}

/// Derived signing keys by day/region/service/secret (a handful of entries per process).
final class SigningKeyCache: @unchecked Sendable {
    // @unchecked: `keys` and `last` are guarded by `lock`; a Mutex cannot hand out entries, as
    // swift-crypto's SymmetricKey and HMAC are not Sendable.
    static let shared = SigningKeyCache()
    /// Entries kept at most: a process uses one or two at a time (a day boundary).
    static let capacity = 8

    struct Key: Hashable {
        var day: String, region: String, service: String, secret: String
    }

    struct Entry {
        var key: SymmetricKey
        var mac: HMAC<SHA256>
    }

    private let lock = NSLock()
    private var keys: [Key: Entry] = [:]
    /// The entry found last: almost every lookup asks for it again, and comparing is cheaper
    /// than hashing four strings.
    private var last: (key: Key, value: Entry)?

    func get(_ k: Key) -> Entry? {
        lock.lock(); defer { lock.unlock() }
        if let last, last.key == k { return last.value }
        guard let v = keys[k] else { return nil }
        last = (k, v)
        return v
    }

    func put(_ k: Key, _ v: Entry) {
        lock.lock(); defer { lock.unlock() }
        if keys.count >= Self.capacity { keys.removeAll() }
        keys[k] = v
        last = (k, v)
    }
}
