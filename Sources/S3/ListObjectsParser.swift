/// Parses a ListObjectsV2 response body into a `ListPage`.
///
/// Reads `<ListBucketResult>` with `XMLLeafReader`, collecting each `<Contents>` (Key, Size,
/// ETag, LastModified), each `<CommonPrefixes><Prefix>`, `IsTruncated` and
/// `NextContinuationToken`; everything else (Owner, StorageClass, checksums...) is ignored.
///
/// - ETags are stored without their quotes, however the server escaped them (`"abc"`,
///   `&quot;abc&quot;`, `&#34;abc&#34;`); multipart ETags (`abc-3`) are kept as they are.
/// - LastModified (ISO 8601, with or without fractional seconds) becomes seconds since 1970;
///   an unreadable date is dropped (nil) rather than failing the page.
/// - When the response says `<EncodingType>url</EncodingType>` (wherever it appears), keys and
///   common prefixes are decoded afterwards, the way AWS SDKs do it (`+` is a space, then
///   `%XX` bytes as UTF-8). Continuation tokens are never encoded.
/// - Key text is taken verbatim: no trimming, so leading/trailing spaces survive.
/// Malformed XML, a different root element, a `<Contents>` without `<Key>` or a bad `<Size>`
/// throw `ListObjectsParseError`.
import Foundation
import SoakCore

/// Why a listing body could not be used; `description` is one line.
public struct ListObjectsParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum ListObjectsParser {
    public static func parse(_ data: Data) throws -> ListPage {
        var page = ListPage()
        var encodingType: String? = nil
        var rootName: String? = nil
        var problem: String? = nil

        // The <Contents> being read.
        var key: String? = nil
        var size: String? = nil
        var etag = ""
        var lastModified: String? = nil

        do {
            try XMLLeafReader.read(data, open: { path in
                if path.count == 1 { rootName = path[0] }
                if path.count == 2 && path[1] == "Contents" {
                    key = nil; size = nil; etag = ""; lastModified = nil
                }
            }, close: { path, text in
                guard problem == nil, path.first == "ListBucketResult" else { return }
                switch path.count {
                case 2:
                    switch path[1] {
                    case "IsTruncated":
                        page.isTruncated = text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() == "true"
                    case "NextContinuationToken":
                        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
                        page.nextContinuationToken = t.isEmpty ? nil : t
                    case "EncodingType":
                        encodingType = text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
                    case "Contents":
                        guard let k = key else {
                            problem = "<Contents> entry without a <Key>"
                            return
                        }
                        let s = (size ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
                        guard let n = Int64(s), n >= 0 else {
                            problem = size == nil ? "<Contents> for '\(PathError.printable(k))' has no <Size>"
                                : "<Contents> for '\(PathError.printable(k))' has a bad <Size> '\(PathError.printable(s))'"
                            return
                        }
                        page.objects.append(ObjectInfo(key: k, size: n, etag: etag,
                                                       lastModified: lastModified.flatMap(UTCTime.parseISO8601)))
                    default: break
                    }
                case 3 where path[1] == "Contents":
                    switch path[2] {
                    case "Key": key = text
                    case "Size": size = text
                    case "ETag": etag = unquoteETag(text)
                    case "LastModified": lastModified = text
                    default: break
                    }
                case 3 where path[1] == "CommonPrefixes" && path[2] == "Prefix":
                    page.commonPrefixes.append(text)
                default: break
                }
            })
        } catch let e as XMLReadError {
            throw ListObjectsParseError("ListObjectsV2 response is not valid XML: \(e)")
        }
        guard rootName == "ListBucketResult" else {
            throw ListObjectsParseError("expected <ListBucketResult>, got <\(rootName ?? "")>")
        }
        if let problem { throw ListObjectsParseError("ListObjectsV2 response: \(problem)") }

        if encodingType == "url" {
            for i in page.objects.indices {
                guard let k = urlDecode(page.objects[i].key) else {
                    throw ListObjectsParseError("ListObjectsV2 response: undecodable url-encoded key '\(PathError.printable(page.objects[i].key))'")
                }
                page.objects[i].key = k
            }
            for i in page.commonPrefixes.indices {
                guard let p = urlDecode(page.commonPrefixes[i]) else {
                    throw ListObjectsParseError("ListObjectsV2 response: undecodable url-encoded prefix '\(PathError.printable(page.commonPrefixes[i]))'")
                }
                page.commonPrefixes[i] = p
            }
        }
        return page
    }

    /// `"abc"` → `abc` (entities are already decoded by the XML parser); surrounding whitespace
    /// and a weak-validator `W/` prefix are dropped too.
    public static func unquoteETag(_ raw: String) -> String {
        var e = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if e.hasPrefix("W/") { e.removeFirst(2) }
        if e.count >= 2, e.hasPrefix("\""), e.hasSuffix("\"") {
            e = String(e.dropFirst().dropLast())
        } else if e.hasPrefix("\"") || e.hasSuffix("\"") {
            e = e.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return e
    }

    /// Decodes an `encoding-type=url` value: `+` → space, `%XX` → byte, bytes as UTF-8.
    /// Nil when a `%` escape is malformed or the bytes are not UTF-8.
    public static func urlDecode(_ s: String) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var it = Array(s.utf8)[...]
        func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        while let c = it.popFirst() {
            if c == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if c == UInt8(ascii: "%") {
                guard let h = it.popFirst(), let l = it.popFirst(), let hv = hexValue(h), let lv = hexValue(l) else {
                    return nil
                }
                out.append(hv << 4 | lv)
            } else {
                out.append(c)
            }
        }
        let decoded = String(decoding: out, as: UTF8.self)
        return decoded.utf8.elementsEqual(out) ? decoded : nil
    }
}
