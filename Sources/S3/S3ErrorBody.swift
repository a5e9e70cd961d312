/// The XML body of an S3 error response.
///
/// `<Error><Code>NoSuchKey</Code><Message>…</Message><RequestId>…</RequestId></Error>`: the
/// direct children of a root `<Error>` are read with `XMLLeafReader`. `Region` (sent with
/// `AuthorizationHeaderMalformed` / `PermanentRedirect`) and `Endpoint` are kept because they
/// say how to fix a wrong region or endpoint. Anything that is not such a document (HTML from a
/// proxy, an empty HEAD body, truncated XML) parses to nil, and the caller falls back to the
/// HTTP status.
import Foundation

public struct S3ErrorBody: Sendable, Equatable {
    public var code: String
    public var message: String
    public var requestId: String?
    /// The bucket's real region, when the server says so.
    public var region: String?
    /// The endpoint to use instead, for redirects.
    public var endpoint: String?

    public init(code: String, message: String, requestId: String? = nil, region: String? = nil,
                endpoint: String? = nil) {
        self.code = code; self.message = message; self.requestId = requestId
        self.region = region; self.endpoint = endpoint
    }

    /// Nil unless `data` is well-formed XML with root `<Error>` and a non-empty `<Code>`.
    public static func parse(_ data: Data) -> S3ErrorBody? {
        guard !data.isEmpty else { return nil }
        var root: String? = nil
        var fields: [String: String] = [:]
        do {
            try XMLLeafReader.read(data, open: { path in
                if path.count == 1 { root = path[0] }
            }, close: { path, text in
                if path.count == 2 && path[0] == "Error" { fields[path[1]] = text }
            })
        } catch {
            return nil
        }
        guard root == "Error" else { return nil }
        func field(_ name: String) -> String? {
            guard let v = fields[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        guard let code = field("Code") else { return nil }
        return S3ErrorBody(code: code, message: field("Message") ?? "", requestId: field("RequestId"),
                           region: field("Region"), endpoint: field("Endpoint"))
    }
}
