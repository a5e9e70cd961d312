/// Builds complete, signed S3 requests (URL + headers) for any HTTP client.
///
/// The builder owns the one place where a bucket/key/query becomes bytes on the wire: the
/// path comes from `S3Endpoint.canonicalURI` (each key byte percent-encoded except unreserved
/// characters and `/`), and the query string is `SigV4Signer.canonicalQueryString`, the very
/// string that is signed. Because the URL is built from the signed pieces rather than signed
/// after the fact, awkward keys (`a b`, `ü`, `+`, `%`, `?`, `#`, `&`, `=`, `~`, `'`) cannot make
/// the signature disagree with the request.
///
/// It is a value type, `Codable` so the coordinator can hand it (credentials included) to
/// worker processes over their private pipe, and cheap to use from any thread. Bodiless
/// requests only: the payload hash is always that of the empty string.
import Foundation
import SoakCore

/// A request ready for the transport. `headers` includes `Host` (equal to the URL's authority,
/// which is what libcurl sends) and every signing header.
public struct SignedRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]

    public init(method: String, url: String, headers: [(name: String, value: String)]) {
        self.method = method; self.url = url; self.headers = headers
    }

    /// The first header named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.name.lowercased() == n }?.value
    }
}

public struct S3RequestBuilder: Sendable, Codable {
    public var endpoint: S3Endpoint
    public var credentials: Credentials
    /// `--no-sign-request`: requests go out anonymous (public buckets), with no signature at all.
    public var unsigned: Bool
    /// `--request-payer requester`: sent (and signed) as `x-amz-request-payer` on every request.
    public var requestPayer: String?

    public init(endpoint: S3Endpoint, credentials: Credentials, unsigned: Bool = false, requestPayer: String? = nil) {
        self.endpoint = endpoint
        self.credentials = credentials
        self.unsigned = unsigned
        self.requestPayer = requestPayer
    }

    /// An anonymous builder (`--no-sign-request`): no credentials are looked up or sent.
    public static func anonymous(endpoint: S3Endpoint, requestPayer: String? = nil) -> S3RequestBuilder {
        S3RequestBuilder(endpoint: endpoint, credentials: Credentials(accessKeyId: "", secretAccessKey: ""),
                         unsigned: true, requestPayer: requestPayer)
    }

    /// The same builder signing for `region`: an AWS endpoint moves to that region's host, a
    /// custom endpoint keeps its host and only changes the signing scope.
    public func inRegion(_ region: String) throws -> S3RequestBuilder {
        var b = self
        if endpoint.isCustom {
            b.endpoint.region = try S3Endpoint(url: endpoint.urlString, region: region).region
        } else {
            b.endpoint = try S3Endpoint(url: nil, region: region, addressing: endpoint.addressing)
        }
        return b
    }

    /// A signed request. `key` nil addresses the bucket itself; `query` is raw (unencoded);
    /// `headers` are extra headers to send and sign (Range, If-Match...).
    public func request(method: String, bucket: String, key: String?, query: [(String, String)] = [],
                        headers: [(String, String)] = [], date: Date = Date()) -> SignedRequest {
        let host = endpoint.hostHeader(bucket: bucket)
        let path = endpoint.canonicalURI(bucket: bucket, key: key)
        let queryString = SigV4Signer.canonicalQueryString(query)
        var url = "\(endpoint.scheme)://\(host)\(path)"
        if !queryString.isEmpty { url += "?" + queryString }

        var signed: [(String, String)] = [("Host", host)]
        for h in headers where !SigV4Signer.asciiCaselessEqual(h.0, "host") { signed.append(h) }
        if let payer = requestPayer { signed.append(("x-amz-request-payer", payer)) }
        if unsigned { return SignedRequest(method: method, url: url, headers: signed.map { (name: $0.0, value: $0.1) }) }
        let signer = SigV4Signer(credentials: credentials, region: endpoint.region, service: "s3")
        let added = signer.sign(method: method, canonicalURI: path, query: query, headers: signed,
                                payloadHash: SigV4Signer.emptyPayloadHash, date: date)
        var out: [(name: String, value: String)] = []
        out.reserveCapacity(signed.count + added.count)
        for (n, v) in signed where !SigV4Signer.isSignerOwned(n) { out.append((name: n, value: v)) }
        for (n, v) in added { out.append((name: n, value: v)) }
        return SignedRequest(method: method, url: url, headers: out)
    }

    /// ListObjectsV2 (`GET /?list-type=2&...`). Empty `prefix` and nil/empty `delimiter` or
    /// `continuationToken` are left out. With `encodingTypeURL` the server is asked to
    /// percent-encode keys (`encoding-type=url`); `ListObjectsParser` decodes them again. It is
    /// off by default because servers disagree on how to encode `+` and spaces.
    public func listObjectsV2(bucket: String, prefix: String, delimiter: String? = nil,
                              continuationToken: String? = nil, maxKeys: Int = 1000,
                              encodingTypeURL: Bool = false, date: Date = Date()) -> SignedRequest {
        var q: [(String, String)] = [("list-type", "2")]
        if !prefix.isEmpty { q.append(("prefix", prefix)) }
        if let d = delimiter, !d.isEmpty { q.append(("delimiter", d)) }
        if let t = continuationToken, !t.isEmpty { q.append(("continuation-token", t)) }
        q.append(("max-keys", String(maxKeys)))
        if encodingTypeURL { q.append(("encoding-type", "url")) }
        return request(method: "GET", bucket: bucket, key: nil, query: q, date: date)
    }

    /// HeadObject.
    public func headObject(bucket: String, key: String, date: Date = Date()) -> SignedRequest {
        request(method: "HEAD", bucket: bucket, key: key, date: date)
    }

    /// GetObject, optionally for an inclusive byte range (`Range: bytes=a-b`) and only if the
    /// object still has ETag `ifMatch` (given with or without quotes; sent quoted).
    public func getObject(bucket: String, key: String, range: ClosedRange<Int64>? = nil, ifMatch: String? = nil,
                          date: Date = Date()) -> SignedRequest {
        var h: [(String, String)] = []
        if let r = range { h.append(("Range", "bytes=\(r.lowerBound)-\(r.upperBound)")) }
        if let e = ifMatch, !e.isEmpty { h.append(("If-Match", Self.quotedETag(e))) }
        return request(method: "GET", bucket: bucket, key: key, headers: h, date: date)
    }

    /// `abc` → `"abc"`; already quoted (or weak `W/"abc"`) values and `*` are kept as they are.
    public static func quotedETag(_ etag: String) -> String {
        // The usual case, a bare hex ETag from a listing: quote it without trimming or scanning
        // Characters (this runs for every GET).
        if let f = etag.utf8.first, let l = etag.utf8.last, f != UInt8(ascii: "\""), l != UInt8(ascii: "\""),
           !SigV4Signer.isSpace(f), !SigV4Signer.isSpace(l), etag != "*", !etag.hasPrefix("W/") {
            return "\"" + etag + "\""
        }
        let e = etag.trimmingASCIIWhitespace()
        if e == "*" || e.hasPrefix("W/\"") { return e }
        if e.count >= 2, e.hasPrefix("\""), e.hasSuffix("\"") { return e }
        var inner = Substring(e)
        while inner.hasPrefix("\"") { inner = inner.dropFirst() }
        while inner.hasSuffix("\"") { inner = inner.dropLast() }
        return "\"\(inner)\""
    }
}
