/// One blocking HTTP request with a deadline, for the credential sources (STS, the container
/// endpoint, instance metadata). These are a few small requests per credential lifetime, so a
/// fresh easy handle each time is fine; the body is kept whole (a cap keeps a hostile endpoint
/// from filling memory).
import Foundation

struct CredentialHTTPResponse: Sendable {
    var status: Int
    var body: Data
}

/// A request that got no HTTP answer (refused, timed out, TLS failure). Says where, never what
/// was sent (headers may hold tokens).
struct CredentialHTTPError: Error, Sendable, CustomStringConvertible {
    var url: String
    var reason: String
    /// True when the deadline passed (libcurl's CURLE_OPERATION_TIMEDOUT).
    var timedOut: Bool
    var description: String { "\(reason) (\(url))" }
}

enum CredentialHTTP {
    /// The largest answer kept: credential documents are a few KB.
    static let bodyLimit = 256 * 1024
    /// libcurl's CURLE_OPERATION_TIMEDOUT.
    static let curlTimedOut: Int32 = 28

    static func send(method: String, url: String, headers: [(name: String, value: String)] = [],
                     body: [UInt8] = [], timeout: Double, transport: TransportOptions) throws -> CredentialHTTPResponse {
        let t = try CurlTransfer()
        var received = Data()
        do {
            try t.prepare(method: method, url: url, headers: headers, options: transport)
            if !body.isEmpty { try t.setRequestBody(body) }
            try t.setTimeout(milliseconds: max(1, Int(timeout * 1000)))
        } catch {
            throw CredentialHTTPError(url: url, reason: "cannot set up the request: \(error)", timedOut: false)
        }
        t.sink = { buf in
            guard received.count + buf.count <= bodyLimit else {
                throw CredentialHTTPError(url: url, reason: "answer larger than \(bodyLimit) bytes", timedOut: false)
            }
            received.append(contentsOf: buf)
        }
        let rc = t.perform()
        if let e = t.sinkError { throw e }
        guard rc == 0 else {
            throw CredentialHTTPError(url: url, reason: CurlTransfer.describe(code: rc), timedOut: rc == curlTimedOut)
        }
        let status = t.head.status != 0 ? t.head.status : t.responseCode
        if !(200..<300).contains(status) { received = Data(t.errorBody) }
        return CredentialHTTPResponse(status: status, body: received)
    }

    /// `application/x-www-form-urlencoded` body (RFC 3986 unreserved characters kept, as the
    /// AWS query protocol encodes).
    static func formBody(_ fields: [(String, String)]) -> [UInt8] {
        Array(fields.map { SigV4Signer.uriEncode($0.0, encodeSlash: true) + "=" + SigV4Signer.uriEncode($0.1, encodeSlash: true) }
            .joined(separator: "&").utf8)
    }
}
