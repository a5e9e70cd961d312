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
    /// The elements read, by their index in `names`.
    private enum Name {
        static let listBucketResult = 0, isTruncated = 1, nextContinuationToken = 2, encodingType = 3
        static let contents = 4, commonPrefixes = 5, key = 6, size = 7, etag = 8, lastModified = 9, prefix = 10
    }
    private static let names = XMLLeafReader.Names([
        "ListBucketResult", "IsTruncated", "NextContinuationToken", "EncodingType", "Contents", "CommonPrefixes",
        "Key", "Size", "ETag", "LastModified", "Prefix",
    ])

    /// A `<Size>` as read: plain decimal digits are converted at once, anything else is kept
    /// for the general (trimming) conversion at the end of its `<Contents>`.
    private enum SizeText {
        case missing
        case value(Int64)
        case text(String)
    }

    public static func parse(_ data: Data) throws -> ListPage {
        var page = ListPage()
        var urlEncoded = false
        var rootName: String? = nil
        var problem: String? = nil

        // The <Contents> being read.
        var key: String? = nil
        var size = SizeText.missing
        var etag = ""
        var lastModified: Double? = nil

        do {
            try XMLLeafReader.read(data, names: names, open: { path in
                if path.count == 1 { rootName = path.name(0) }
                if path.count == 2 && path[1] == Name.contents {
                    key = nil; size = .missing; etag = ""; lastModified = nil
                }
            }, close: { path, text in
                guard problem == nil, path[0] == Name.listBucketResult else { return }
                switch path.count {
                case 2:
                    switch path[1] {
                    case Name.isTruncated:
                        if let t = asciiTrimmed(text.utf8) {
                            page.isTruncated = t.count == 4 && zip(t, "true".utf8).allSatisfy { $0 | 0x20 == $1 }
                        } else {
                            page.isTruncated = text.string.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() == "true"
                        }
                    case Name.nextContinuationToken:
                        let t = asciiTrimmed(text.utf8).map { String(decoding: $0, as: UTF8.self) }
                            ?? text.string.trimmingCharacters(in: .whitespacesAndNewlines)
                        page.nextContinuationToken = t.isEmpty ? nil : t
                    case Name.encodingType:
                        if let t = asciiTrimmed(text.utf8) {
                            urlEncoded = t.count == 3 && zip(t, "url".utf8).allSatisfy { $0 | 0x20 == $1 }
                        } else {
                            urlEncoded = text.string.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() == "url"
                        }
                    case Name.contents:
                        guard let k = key else {
                            problem = "<Contents> entry without a <Key>"
                            return
                        }
                        let n: Int64
                        switch size {
                        case .value(let v):
                            n = v
                        case .missing, .text:
                            var raw: String? = nil
                            if case .text(let t) = size { raw = t }
                            let s = (raw ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
                            guard let v = Int64(s), v >= 0 else {
                                problem = raw == nil ? "<Contents> for '\(PathError.printable(k))' has no <Size>"
                                    : "<Contents> for '\(PathError.printable(k))' has a bad <Size> '\(PathError.printable(s))'"
                                return
                            }
                            n = v
                        }
                        page.objects.append(ObjectInfo(key: k, size: n, etag: etag, lastModified: lastModified))
                    default: break
                    }
                case 3 where path[1] == Name.contents:
                    switch path[2] {
                    case Name.key: key = text.string
                    case Name.size: size = decimal(text.utf8).map { .value($0) } ?? .text(text.string)
                    case Name.etag: etag = unquoteETag(text.utf8)
                    case Name.lastModified: lastModified = UTCTime.parseISO8601(utf8: text.utf8)
                    default: break
                    }
                case 3 where path[1] == Name.commonPrefixes && path[2] == Name.prefix:
                    page.commonPrefixes.append(text.string)
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

        if urlEncoded {
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
        var raw = raw
        if let e = raw.withUTF8({ asciiUnquoted($0) }) { return e }
        return unquoteETagWithFoundation(raw)
    }

    /// The rules of `unquoteETag` on Characters, for text that is not ASCII (and, in the tests,
    /// as the reference the byte path must agree with).
    static func unquoteETagWithFoundation(_ raw: String) -> String {
        var e = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if e.hasPrefix("W/") { e.removeFirst(2) }
        if e.count >= 2, e.hasPrefix("\""), e.hasSuffix("\"") {
            e = String(e.dropFirst().dropLast())
        } else if e.hasPrefix("\"") || e.hasSuffix("\"") {
            e = e.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return e
    }

    /// `unquoteETag` of UTF-8 text.
    private static func unquoteETag(_ utf8: UnsafeBufferPointer<UInt8>) -> String {
        asciiUnquoted(utf8) ?? unquoteETag(String(decoding: utf8, as: UTF8.self))
    }

    /// `unquoteETag` done on the bytes when they are all ASCII (nil otherwise). For ASCII text
    /// the `String` version's steps are byte steps: `.whitespacesAndNewlines` holds exactly
    /// tab, LF, VT, FF, CR and space there, and each byte is one Character (but CR LF, which is
    /// whitespace and so never first or last after trimming).
    private static func asciiUnquoted(_ utf8: UnsafeBufferPointer<UInt8>) -> String? {
        guard var e = asciiTrimmed(utf8) else { return nil }
        let quote = UInt8(ascii: "\"")
        if e.count >= 2 && e[e.startIndex] == UInt8(ascii: "W") && e[e.startIndex + 1] == UInt8(ascii: "/") {
            e = e.dropFirst(2)
        }
        if e.count >= 2, e.first == quote, e.last == quote {
            e = e.dropFirst().dropLast()
        } else if e.first == quote || e.last == quote {
            while e.first == quote { e = e.dropFirst() }
            while e.last == quote { e = e.dropLast() }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: e), as: UTF8.self)
    }

    /// `utf8` without surrounding whitespace when it is all ASCII (what Foundation's
    /// `.whitespacesAndNewlines` holds in ASCII: tab, LF, VT, FF, CR, space); nil otherwise.
    private static func asciiTrimmed(_ utf8: UnsafeBufferPointer<UInt8>) -> Slice<UnsafeBufferPointer<UInt8>>? {
        var high: UInt8 = 0
        for c in utf8 { high |= c }
        guard high < 0x80 else { return nil }
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0D) }
        var lo = 0, hi = utf8.count
        while lo < hi && isSpace(utf8[lo]) { lo += 1 }
        while hi > lo && isSpace(utf8[hi - 1]) { hi -= 1 }
        return utf8[lo..<hi]
    }

    /// The value of text made only of ASCII digits (what `Int64(_:)` reads the same way after
    /// trimming, which changes nothing there); nil for anything else, or when it overflows.
    private static func decimal(_ utf8: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard !utf8.isEmpty else { return nil }
        var v: Int64 = 0
        for c in utf8 {
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(c - UInt8(ascii: "0")))
            guard !o1 && !o2 else { return nil }
            v = s
        }
        return v
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
