/// A minimal XML reader for S3's flat responses, written out by hand over the bytes.
///
/// S3 answers are shallow trees of text-only leaves, so the reader reports two events: an
/// element opening (with its path from the root, to start a record) and an element closing (with
/// its path and the exact text it held). Namespace prefixes are dropped (`<s3:Key>` reads as
/// `Key`); attributes are skipped; character and entity references (`&#34;`, `&quot;`, ...) and
/// CDATA are decoded; text is never trimmed (keys may start or end with spaces). A DOCTYPE is
/// refused, so no entity is ever defined or expanded, and nothing external is read.
///
/// Why not Foundation's `XMLParser`: a mutated listing (found by `ListObjectsParserFuzzTests`)
/// crashed swift-corelibs-foundation inside its libxml2 start-element callback, and a server's
/// answer must never crash soak. This reader only ever returns or throws, in linear time.
import Foundation
import SoakCore

/// Malformed XML, with where the reader gave up.
struct XMLReadError: Error, Sendable, CustomStringConvertible {
    var message: String
    var line: Int
    var column: Int
    /// One printable line: the message may quote the document, which is the server's.
    var description: String {
        let m = PathError.printable(message)
        return line > 0 ? "malformed XML at line \(line), column \(column): \(m)" : "malformed XML: \(m)"
    }
}

enum XMLLeafReader {
    /// Deepest nesting accepted (S3's answers are 3 levels deep).
    static let maxDepth = 64

    /// Parses `data`, calling `open(path)` when an element starts and `close(path, text)` when it
    /// ends. `path` runs from the root element to the current one (namespace prefixes dropped).
    static func read(_ data: Data, open: (_ path: [String]) -> Void,
                     close: (_ path: [String], _ text: String) -> Void) throws {
        let b = [UInt8](data)
        guard !b.isEmpty else { throw XMLReadError(message: "empty body", line: 0, column: 0) }
        var i = 0
        var path: [String] = []
        var text: [UInt8] = []
        var sawRoot = false
        // Skip a UTF-8 byte order mark.
        if b.count >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF { i = 3 }

        func fail(_ message: String, at pos: Int) -> XMLReadError {
            var line = 1, column = 1
            for k in 0..<min(pos, b.count) {
                if b[k] == 0x0A { line += 1; column = 1 } else { column += 1 }
            }
            return XMLReadError(message: message, line: line, column: column)
        }
        func starts(_ s: String, at pos: Int) -> Bool {
            let u = Array(s.utf8)
            guard pos + u.count <= b.count else { return false }
            for k in 0..<u.count where b[pos + k] != u[k] { return false }
            return true
        }
        /// Index just past the first `end` at or after `from`.
        func skip(past end: String, from: Int, what: String) throws -> Int {
            let u = Array(end.utf8)
            var k = from
            while k + u.count <= b.count {
                if b[k] == u[0] && starts(end, at: k) { return k + u.count }
                k += 1
            }
            throw fail("unterminated \(what)", at: from)
        }
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
        func isNameByte(_ c: UInt8) -> Bool {
            !(c < 0x20 || c == 0x7F || isSpace(c) || c == UInt8(ascii: ">") || c == UInt8(ascii: "/") || c == UInt8(ascii: "<")
                || c == UInt8(ascii: "=") || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") || c == UInt8(ascii: "&"))
        }
        /// An element name at `pos`: (local name, index after it).
        func name(at pos: Int) throws -> (String, Int) {
            var k = pos
            while k < b.count && isNameByte(b[k]) { k += 1 }
            guard k > pos, let full = String(validating: b[pos..<k], as: UTF8.self) else { throw fail("bad element name", at: pos) }
            let local = full.split(separator: ":", omittingEmptySubsequences: false).last.map(String.init) ?? full
            guard !local.isEmpty else { throw fail("bad element name", at: pos) }
            return (local, k)
        }

        while i < b.count {
            let c = b[i]
            guard c == UInt8(ascii: "<") else {
                guard c != 0 else { throw fail("NUL byte in the document", at: i) }
                if path.isEmpty {
                    guard isSpace(c) else { throw fail(sawRoot ? "content after the root element" : "text before the root element", at: i) }
                } else {
                    text.append(c)
                }
                i += 1
                continue
            }
            if starts("<?", at: i) {
                i = try skip(past: "?>", from: i + 2, what: "processing instruction")
            } else if starts("<!--", at: i) {
                i = try skip(past: "-->", from: i + 4, what: "comment")
            } else if starts("<![CDATA[", at: i) {
                guard !path.isEmpty else { throw fail("CDATA outside an element", at: i) }
                let end = try skip(past: "]]>", from: i + 9, what: "CDATA section")
                guard !b[(i + 9)..<(end - 3)].contains(0) else { throw fail("NUL byte in the document", at: i) }
                // CDATA is literal: mark it so entity decoding leaves it alone.
                text.append(0); text.append(contentsOf: b[(i + 9)..<(end - 3)]); text.append(0)
                i = end
            } else if starts("<!", at: i) {
                throw fail("DOCTYPE and declarations are not accepted", at: i)
            } else if starts("</", at: i) {
                let (local, after) = try name(at: i + 2)
                var k = after
                while k < b.count && isSpace(b[k]) { k += 1 }
                guard k < b.count, b[k] == UInt8(ascii: ">") else { throw fail("bad closing tag", at: i) }
                guard let open = path.last else { throw fail("closing tag </\(local)> without an open element", at: i) }
                guard open == local else { throw fail("mismatched closing tag </\(local)> for <\(open)>", at: i) }
                close(path, try decode(text, at: i, fail))
                text.removeAll(keepingCapacity: true)
                path.removeLast()
                i = k + 1
            } else {
                guard path.count < maxDepth else { throw fail("nested deeper than \(maxDepth)", at: i) }
                guard !(path.isEmpty && sawRoot) else { throw fail("content after the root element", at: i) }
                let (local, after) = try name(at: i + 1)
                // Attributes: skipped, quotes honoured (a value may hold `>`).
                var k = after
                var selfClosing = false
                while true {
                    guard k < b.count else { throw fail("unterminated start tag <\(local)>", at: i) }
                    let d = b[k]
                    if d == UInt8(ascii: ">") { break }
                    if d == UInt8(ascii: "/") {
                        guard k + 1 < b.count, b[k + 1] == UInt8(ascii: ">") else { throw fail("bad start tag <\(local)>", at: i) }
                        selfClosing = true
                        k += 1
                        break
                    }
                    if d == UInt8(ascii: "\"") || d == UInt8(ascii: "'") {
                        k = try skip(past: d == UInt8(ascii: "\"") ? "\"" : "'", from: k + 1, what: "attribute value")
                        continue
                    }
                    if d == UInt8(ascii: "<") || d == 0 { throw fail("bad start tag <\(local)>", at: i) }
                    k += 1
                }
                sawRoot = true
                path.append(local)
                text.removeAll(keepingCapacity: true)
                open(path)
                if selfClosing {
                    close(path, "")
                    path.removeLast()
                }
                i = k + 1
            }
        }
        guard sawRoot else { throw fail("no root element", at: i) }
        guard path.isEmpty else { throw fail("document ended inside <\(path.last!)>", at: i) }
    }

    /// Element text with references decoded (CDATA, marked by NUL bytes, kept literally); it
    /// must be UTF-8.
    private static func decode(_ raw: [UInt8], at pos: Int, _ fail: (String, Int) -> XMLReadError) throws -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        var inCDATA = false
        while i < raw.count {
            let c = raw[i]
            if c == 0 { inCDATA.toggle(); i += 1; continue }
            guard c == UInt8(ascii: "&"), !inCDATA else { out.append(c); i += 1; continue }
            guard let semi = raw[i...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else { throw fail("unterminated reference", pos) }
            let ref = String(decoding: raw[(i + 1)..<semi], as: UTF8.self)
            var scalar: Unicode.Scalar?
            switch ref {
            case "lt": scalar = "<"
            case "gt": scalar = ">"
            case "amp": scalar = "&"
            case "quot": scalar = "\""
            case "apos": scalar = "'"
            default:
                // Digits only (UInt32(_:radix:) would also take a sign).
                if ref.hasPrefix("#x") || ref.hasPrefix("#X") {
                    let d = ref.dropFirst(2)
                    if !d.isEmpty, d.allSatisfy(\.isHexDigit) { scalar = UInt32(d, radix: 16).flatMap(Unicode.Scalar.init) }
                } else if ref.hasPrefix("#") {
                    let d = ref.dropFirst()
                    if !d.isEmpty, d.allSatisfy({ $0 >= "0" && $0 <= "9" }) { scalar = UInt32(d).flatMap(Unicode.Scalar.init) }
                }
            }
            guard let s = scalar, s.value != 0 else { throw fail("bad reference &\(ref.prefix(10));", pos) }
            out.append(contentsOf: Array(String(Character(s)).utf8))
            i = semi + 1
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("text is not UTF-8", pos) }
        return s
    }
}
