/// Where S3 requests go and how buckets are addressed.
///
/// The endpoint is `https://s3.<region>.amazonaws.com` (`.amazonaws.com.cn` for `cn-*`
/// regions) unless a URL is given (`--endpoint-url`, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL).
/// Such a URL is `http(s)://host[:port]` with nothing after the authority but an optional `/`;
/// anything else (a path, query, credentials) is refused with a one-line `S3EndpointError`
/// rather than silently mis-signed. Default ports are dropped, so the URL, the `Host` header
/// libcurl derives from it and the signed `host` header always agree.
///
/// Addressing: `path` puts the bucket in the path (`host/bucket/key`), `virtual` in the host
/// name (`bucket.host/key`), and `auto` picks virtual-hosted only when the bucket is a valid DNS
/// label sequence (lowercase, 3–63 chars, no `..`, not IP-like, and no dots over https, whose
/// wildcard certificates would not match) and the endpoint host is neither an IP literal nor
/// `localhost` (which cannot have bucket sub-domains). Local S3-compatible servers on
/// `localhost:8333` or `127.0.0.1:9000` therefore get path-style automatically.
import Foundation

public enum Addressing: String, Sendable, Codable, CaseIterable {
    case path, virtual, auto
}

/// A refused endpoint URL or region; `description` is one line.
public struct S3EndpointError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public struct S3Endpoint: Sendable, Codable, Equatable {
    /// `http` or `https`.
    public var scheme: String
    /// Lowercase host name, dotted IPv4, or bracketed IPv6 (`[::1]`).
    public var host: String
    /// Explicit non-default port, else nil.
    public var port: Int?
    /// Signing region.
    public var region: String
    public var addressing: Addressing
    /// True when the endpoint came from a URL rather than the region default.
    public var isCustom: Bool

    /// - Parameter url: an endpoint URL, or nil/empty for the AWS default of `region`.
    public init(url: String?, region: String, addressing: Addressing = .auto) throws {
        let region = region.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !region.isEmpty else { throw S3EndpointError("empty AWS region") }
        guard region.unicodeScalars.allSatisfy({ Self.isRegionChar($0) }) else {
            throw S3EndpointError("invalid AWS region '\(region)' (expected something like us-east-1)")
        }
        self.region = region
        self.addressing = addressing
        let trimmed = url?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if trimmed.isEmpty {
            guard region.unicodeScalars.allSatisfy({ Self.isHostChar($0) && $0 != "." && $0 != "_" }) else {
                throw S3EndpointError("invalid AWS region '\(region)' (expected something like us-east-1)")
            }
            scheme = "https"
            host = "s3.\(region.lowercased()).amazonaws.com" + (region.lowercased().hasPrefix("cn-") ? ".cn" : "")
            port = nil
            isCustom = false
        } else {
            let p = try Self.parse(trimmed)
            scheme = p.scheme; host = p.host; port = p.port
            isCustom = true
        }
    }

    /// The endpoint from `--endpoint-url` (`flag`), else AWS_ENDPOINT_URL_S3, else
    /// AWS_ENDPOINT_URL, else the AWS default for `region`.
    public static func resolve(flag: String?, environment: [String: String], region: String,
                               addressing: Addressing = .auto) throws -> S3Endpoint {
        let candidates = [flag, environment["AWS_ENDPOINT_URL_S3"], environment["AWS_ENDPOINT_URL"]]
        let url = candidates.lazy.compactMap { $0?.trimmingCharacters(in: .whitespacesAndNewlines) }
            .first { !$0.isEmpty }
        return try S3Endpoint(url: url, region: region, addressing: addressing)
    }

    // MARK: - Addressing

    /// `host[:port]`, as in the Host header of a path-style request.
    public var authority: String { port.map { "\(host):\($0)" } ?? host }

    /// The endpoint as a URL string (`https://host[:port]`).
    public var urlString: String { "\(scheme)://\(authority)" }

    /// True when the host is an IPv4 or IPv6 literal.
    public var hostIsIPLiteral: Bool { host.hasPrefix("[") || Self.looksLikeIPv4(host) }

    /// Whether requests for `bucket` put it in the host name.
    public func usesVirtualHosting(bucket: String) -> Bool {
        switch addressing {
        case .path: return false
        case .virtual: return true
        case .auto:
            if hostIsIPLiteral || host == "localhost" || host.hasSuffix(".localhost") { return false }
            return Self.isDNSCompatible(bucket: bucket, allowDots: scheme != "https")
        }
    }

    /// The Host header value for a request on `bucket` (`bucket.host[:port]` or `host[:port]`).
    public func hostHeader(bucket: String) -> String {
        usesVirtualHosting(bucket: bucket) ? "\(bucket).\(authority)" : authority
    }

    /// The percent-encoded request path, which is also the SigV4 canonical URI: `/bucket/key`
    /// (path-style) or `/key` (virtual-hosted); `/bucket` or `/` when `key` is nil. Keys are
    /// encoded byte by byte except unreserved characters and `/`, and never normalised, so
    /// `a//b`, `./x` and trailing slashes reach S3 unchanged.
    public func canonicalURI(bucket: String, key: String?) -> String {
        let encodedKey = key.map { SigV4Signer.uriEncode($0, encodeSlash: false) }
        if usesVirtualHosting(bucket: bucket) {
            return "/" + (encodedKey ?? "")
        }
        let b = "/" + SigV4Signer.uriEncode(bucket, encodeSlash: true)
        return encodedKey.map { b + "/" + $0 } ?? b
    }

    /// `scheme://host[:port]/path` for `bucket`/`key`, without a query string.
    public func url(bucket: String, key: String?) -> String {
        "\(scheme)://\(hostHeader(bucket: bucket))\(canonicalURI(bucket: bucket, key: key))"
    }

    // MARK: - Rules

    /// A bucket name usable as a host-name prefix: 3–63 characters of `a-z 0-9 . -`, starting
    /// and ending with a letter or digit, no empty or dash-edged labels, not shaped like an IPv4
    /// address, and (unless `allowDots`) no dots at all.
    public static func isDNSCompatible(bucket: String, allowDots: Bool) -> Bool {
        let b = Array(bucket.utf8)
        guard b.count >= 3, b.count <= 63 else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) }
        guard alnum(b.first!), alnum(b.last!) else { return false }
        for c in b where !(alnum(c) || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")) { return false }
        if bucket.contains(".") {
            if !allowDots { return false }
            if bucket.contains("..") || bucket.contains(".-") || bucket.contains("-.") { return false }
            if looksLikeIPv4(bucket) { return false }
        }
        return true
    }

    /// Four dot-separated decimal numbers (each 0–255), e.g. `192.168.5.4`.
    /// Runs for every request (through `usesVirtualHosting`), so it reads bytes.
    public static func looksLikeIPv4(_ s: String) -> Bool {
        var parts = 0, digits = 0, value = 0
        for c in s.utf8 {
            if c == UInt8(ascii: ".") {
                guard digits > 0 else { return false }
                parts += 1; digits = 0; value = 0
            } else if c >= 0x30 && c <= 0x39 {
                digits += 1; value = value * 10 + Int(c - 0x30)
                guard digits <= 3, value <= 255 else { return false }
            } else {
                return false
            }
        }
        return digits > 0 && parts == 3
    }

    private static func isRegionChar(_ u: Unicode.Scalar) -> Bool {
        (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || (u >= "0" && u <= "9") || u == "-" || u == "_" || u == "."
    }

    private static func isHostChar(_ u: Unicode.Scalar) -> Bool {
        (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || (u >= "0" && u <= "9") || u == "-" || u == "." || u == "_"
    }

    // MARK: - URL parsing

    static func parse(_ text: String) throws -> (scheme: String, host: String, port: Int?) {
        func fail(_ why: String) -> S3EndpointError {
            S3EndpointError("invalid endpoint URL '\(text)': \(why)")
        }
        guard let sep = text.range(of: "://") else {
            throw fail("expected http://host[:port] or https://host[:port]")
        }
        let scheme = text[..<sep.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else {
            throw fail("scheme must be http or https, not '\(scheme)'")
        }
        let rest = text[sep.upperBound...]
        let authEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = String(rest[..<authEnd])
        let tail = String(rest[authEnd...])
        if !(tail.isEmpty || tail == "/") {
            if tail.hasPrefix("?") || tail.hasPrefix("#") {
                throw fail("query strings and fragments are not supported")
            }
            throw fail("a path ('\(tail)') is not supported; give only scheme://host[:port]")
        }
        guard !authority.contains("@") else { throw fail("credentials in the URL are not supported") }
        guard !authority.isEmpty else { throw fail("missing host") }

        var host: String
        var portText: String? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw fail("unterminated IPv6 address") }
            host = String(authority[...close]).lowercased()
            let inner = authority[authority.index(after: authority.startIndex)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw fail("bad IPv6 address")
            }
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after the IPv6 address") }
                portText = String(after.dropFirst())
            }
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw fail("too many ':' (IPv6 addresses need brackets)") }
            host = String(parts[0]).lowercased()
            if parts.count == 2 { portText = String(parts[1]) }
            guard !host.isEmpty else { throw fail("missing host") }
            guard host.unicodeScalars.allSatisfy({ isHostChar($0) }) else {
                throw fail("host '\(host)' has characters not allowed in a host name")
            }
            guard !host.hasPrefix("."), !host.hasSuffix("."), !host.contains("..") else {
                throw fail("host '\(host)' has an empty label")
            }
        }
        var port: Int? = nil
        if let pt = portText {
            guard !pt.isEmpty, pt.count <= 5, pt.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let p = Int(pt), p >= 1, p <= 65535 else {
                throw fail("port must be a number from 1 to 65535")
            }
            let defaultPort = scheme == "https" ? 443 : 80
            port = p == defaultPort ? nil : p
        }
        return (scheme, host, port)
    }
}
