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
///
/// Speed (a 1000-key listing page is ~280 KB): the body is read in place through one buffer
/// pointer; element names are compared as bytes (names holding non-ASCII bytes take the
/// `String` route, so canonically equivalent names still match as they always did); text that
/// holds no reference, CDATA, comment or processing instruction is a slice of the body, checked
/// as UTF-8 and never copied. `read(_:names:open:close:)` reports names as indexes into a
/// caller's table and text as bytes, so a caller builds only the `String`s it keeps;
/// `read(_:open:close:)` is the same reader with `[String]` paths and `String` text.
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
        var path: [String] = []
        path.reserveCapacity(8)
        try read(data, names: noNames, open: { p in
            path.append(p.name(p.count - 1))
            open(path)
        }, close: { _, text in
            close(path, text.string)
            path.removeLast()
        })
    }

    private static let noNames = Names([])

    /// Element names a caller looks for, each known by its index in the table.
    struct Names: Sendable {
        let strings: [String]
        /// The UTF-8 of the ASCII names, back to back; name `j` is `bytes[offsets[j]...]` for
        /// `counts[j]` bytes, a count of 0 marking a name that is not ASCII (or is empty): those
        /// are compared as `String`s.
        private let bytes: [UInt8]
        private let offsets: [Int]
        private let counts: [Int]
        private let allASCII: Bool

        init(_ strings: [String]) {
            self.strings = strings
            var bytes: [UInt8] = [], offsets: [Int] = [], counts: [Int] = []
            for s in strings {
                offsets.append(bytes.count)
                if s.utf8.allSatisfy({ $0 < 0x80 }) {
                    counts.append(s.utf8.count)
                    bytes.append(contentsOf: s.utf8)
                } else {
                    counts.append(0)
                }
            }
            bytes.append(0)  // so that every offset is an index
            self.bytes = bytes; self.offsets = offsets; self.counts = counts
            allASCII = counts.allSatisfy { $0 > 0 }
        }

        /// Index of the (non-empty, ASCII) name `name`, or -1.
        fileprivate func id(ascii name: UnsafeBufferPointer<UInt8>) -> Int {
            let found: Int = bytes.withUnsafeBufferPointer { t in
                let count = name.count, first = name[0]
                for j in 0..<counts.count where counts[j] == count && t[offsets[j]] == first {
                    if memcmp(t.baseAddress! + offsets[j], name.baseAddress!, count) == 0 { return j }
                }
                return -1
            }
            if found >= 0 || allASCII { return found }
            // An ASCII name can still be canonically equivalent to a non-ASCII one.
            let s = String(decoding: name, as: UTF8.self)
            for j in 0..<counts.count where counts[j] == 0 && strings[j] == s { return j }
            return -1
        }

        /// Index of `name` (compared as `String`s, as `==` does), or -1.
        fileprivate func id(_ name: String) -> Int { strings.firstIndex(of: name) ?? -1 }
    }

    /// An open element: its local name (a byte range of the body when ASCII, else `slow`, built
    /// the `String` way) and its index in the caller's `Names` (-1: none of them).
    fileprivate struct Element {
        var start: Int
        var end: Int
        var slow: String?
        var id: Int
    }

    /// The open elements, root first, as a callback sees them (valid during the callback only).
    struct Path {
        fileprivate let elements: [Element]
        fileprivate let body: UnsafeBufferPointer<UInt8>
        var count: Int { elements.count }
        /// Index in the caller's `Names` of the element at `level` (0 is the root), or -1.
        subscript(level: Int) -> Int { elements[level].id }
        /// Local name of the element at `level`.
        func name(_ level: Int) -> String { XMLLeafReader.string(elements[level], body) }
    }

    /// An element's text, references and CDATA decoded, as valid UTF-8 (valid during the
    /// callback only: it may point into the body or into the reader's scratch buffer).
    struct Text {
        let utf8: UnsafeBufferPointer<UInt8>
        var string: String { String(decoding: utf8, as: UTF8.self) }
    }

    fileprivate static func string(_ e: Element, _ body: UnsafeBufferPointer<UInt8>) -> String {
        e.slow ?? String(decoding: UnsafeBufferPointer(rebasing: body[e.start..<e.end]), as: UTF8.self)
    }

    /// The reader itself: `open(path)` when an element starts, `close(path, text)` when it ends,
    /// with names identified against `names`.
    static func read(_ data: Data, names: Names, open: (_ path: Path) -> Void,
                     close: (_ path: Path, _ text: Text) -> Void) throws {
        guard !data.isEmpty else { throw XMLReadError(message: "empty body", line: 0, column: 0) }
        try data.withUnsafeBytes { raw in
            try scan(raw.bindMemory(to: UInt8.self), names, open, close)
        }
    }

    @inline(__always) private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }

    /// Any byte but controls (below 0x20, DEL), space and `>` `/` `<` `=` `"` `'` `&`: a bit per
    /// ASCII byte (set for name bytes), every byte from 0x80 up.
    @inline(__always) private static func isNameByte(_ c: UInt8) -> Bool {
        if c >= 0x80 { return true }
        let bits: UInt64 = c < 0x40 ? 0x8FFF_7F3A_0000_0000 : 0x7FFF_FFFF_FFFF_FFFF
        return (bits >> (c & 0x3F)) & 1 != 0
    }

    /// Whether `b[pos...]` starts with `s`.
    @inline(__always) private static func starts(_ b: UnsafeBufferPointer<UInt8>, _ s: StaticString, at pos: Int) -> Bool {
        let count = s.utf8CodeUnitCount
        guard pos + count <= b.count else { return false }
        let u = s.utf8Start
        for k in 0..<count where b[pos + k] != u[k] { return false }
        return true
    }

    /// Index just past the first `end` at or after `from`, or nil.
    private static func find(_ b: UnsafeBufferPointer<UInt8>, past end: StaticString, from: Int) -> Int? {
        let first = end.utf8Start[0], count = end.utf8CodeUnitCount
        var k = from
        while k + count <= b.count {
            if b[k] == first && starts(b, end, at: k) { return k + count }
            k += 1
        }
        return nil
    }

    private static func scan(_ b: UnsafeBufferPointer<UInt8>, _ names: Names, _ open: (Path) -> Void,
                             _ close: (Path, Text) -> Void) throws {
        let n = b.count
        var i = 0
        var stack: [Element] = []
        stack.reserveCapacity(maxDepth)
        var sawRoot = false
        // The text of the innermost open element runs from `textStart` (its start tag or its last
        // child's end) to its end tag. It is a plain slice of the body unless it holds references
        // (`hasRef`), or comments, processing instructions (both add nothing) or CDATA (literal
        // text) (`hasMarkup`): then it is rebuilt and decoded when the element closes.
        var textStart = 0
        var hasRef = false, hasMarkup = false
        var rawText: [UInt8] = [], decoded: [UInt8] = []
        // Skip a UTF-8 byte order mark.
        if n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF { i = 3 }

        func fail(_ message: String, at pos: Int) -> XMLReadError {
            var line = 1, column = 1
            for k in 0..<min(pos, n) {
                if b[k] == 0x0A { line += 1; column = 1 } else { column += 1 }
            }
            return XMLReadError(message: message, line: line, column: column)
        }
        func skip(past end: StaticString, from: Int, what: String) throws -> Int {
            guard let k = find(b, past: end, from: from) else { throw fail("unterminated \(what)", at: from) }
            return k
        }
        /// An element name at `pos`: (its local name, index after it).
        func name(at pos: Int) throws -> (Element, Int) {
            var k = pos
            var high: UInt8 = 0
            var colon = -1
            while k < n {
                let c = b[k]
                guard isNameByte(c) else { break }
                high |= c
                if c == UInt8(ascii: ":") { colon = k }
                k += 1
            }
            guard k > pos else { throw fail("bad element name", at: pos) }
            if high < 0x80 {
                // ASCII: the local name is what follows the last colon.
                let start = colon >= 0 ? colon + 1 : pos
                guard start < k else { throw fail("bad element name", at: pos) }
                return (Element(start: start, end: k, slow: nil, id: -1), k)
            }
            guard let full = String(validating: UnsafeBufferPointer(rebasing: b[pos..<k]), as: UTF8.self) else {
                throw fail("bad element name", at: pos)
            }
            // Split by Character, as always: a colon with a combining mark after it is no colon.
            let local = full.split(separator: ":", omittingEmptySubsequences: false).last.map(String.init) ?? full
            guard !local.isEmpty else { throw fail("bad element name", at: pos) }
            return (Element(start: pos, end: k, slow: local, id: -1), k)
        }
        func sameName(_ a: Element, _ c: Element) -> Bool {
            guard a.slow == nil && c.slow == nil else { return string(a, b) == string(c, b) }
            guard a.end - a.start == c.end - c.start else { return false }
            var k = 0
            while k < a.end - a.start {
                if b[a.start + k] != b[c.start + k] { return false }
                k += 1
            }
            return true
        }

        while i < n {
            let c = b[i]
            guard c == UInt8(ascii: "<") else {
                guard c != 0 else { throw fail("NUL byte in the document", at: i) }
                if stack.isEmpty {
                    guard isSpace(c) else { throw fail(sawRoot ? "content after the root element" : "text before the root element", at: i) }
                    i += 1
                } else {
                    // Text: run to the next tag.
                    var k = i
                    while k < n {
                        let d = b[k]
                        if d == UInt8(ascii: "<") { break }
                        if d == 0 { throw fail("NUL byte in the document", at: k) }
                        if d == UInt8(ascii: "&") { hasRef = true }
                        k += 1
                    }
                    i = k
                }
                continue
            }
            if starts(b, "<?", at: i) {
                i = try skip(past: "?>", from: i + 2, what: "processing instruction")
                hasMarkup = true
            } else if starts(b, "<!--", at: i) {
                i = try skip(past: "-->", from: i + 4, what: "comment")
                hasMarkup = true
            } else if starts(b, "<![CDATA[", at: i) {
                guard !stack.isEmpty else { throw fail("CDATA outside an element", at: i) }
                let end = try skip(past: "]]>", from: i + 9, what: "CDATA section")
                for k in (i + 9)..<(end - 3) where b[k] == 0 { throw fail("NUL byte in the document", at: i) }
                hasMarkup = true
                i = end
            } else if starts(b, "<!", at: i) {
                throw fail("DOCTYPE and declarations are not accepted", at: i)
            } else if starts(b, "</", at: i) {
                let (closing, after) = try name(at: i + 2)
                var k = after
                while k < n && isSpace(b[k]) { k += 1 }
                guard k < n, b[k] == UInt8(ascii: ">") else { throw fail("bad closing tag", at: i) }
                guard let top = stack.last else {
                    throw fail("closing tag </\(string(closing, b))> without an open element", at: i)
                }
                guard sameName(top, closing) else {
                    throw fail("mismatched closing tag </\(string(closing, b))> for <\(string(top, b))>", at: i)
                }
                do {  // `path` shares `stack`: gone before `stack` changes, so it is not copied
                    let path = Path(elements: stack, body: b)
                    if !hasRef && !hasMarkup {
                        let text = UnsafeBufferPointer(rebasing: b[textStart..<i])
                        guard isUTF8(text) else { throw fail("text is not UTF-8", at: i) }
                        close(path, Text(utf8: text))
                    } else {
                        if hasMarkup {
                            // Comments and processing instructions drop out; CDATA is kept between
                            // NUL marks so that decoding leaves it alone (the body holds no NUL).
                            // The loop above found each end already (`?? i` is never taken).
                            rawText.removeAll(keepingCapacity: true)
                            var j = textStart
                            while j < i {
                                if b[j] != UInt8(ascii: "<") { rawText.append(b[j]); j += 1; continue }
                                if starts(b, "<?", at: j) {
                                    j = find(b, past: "?>", from: j + 2) ?? i
                                } else if starts(b, "<!--", at: j) {
                                    j = find(b, past: "-->", from: j + 4) ?? i
                                } else if let end = find(b, past: "]]>", from: j + 9), end <= i {
                                    rawText.append(0)
                                    rawText.append(contentsOf: UnsafeBufferPointer(rebasing: b[(j + 9)..<(end - 3)]))
                                    rawText.append(0)
                                    j = end
                                } else {
                                    j = i
                                }
                            }
                            try rawText.withUnsafeBufferPointer { try decode($0, into: &decoded, at: i, fail) }
                        } else {
                            try decode(UnsafeBufferPointer(rebasing: b[textStart..<i]), into: &decoded, at: i, fail)
                        }
                        decoded.withUnsafeBufferPointer { close(path, Text(utf8: $0)) }
                    }
                }
                stack.removeLast()
                i = k + 1
                textStart = i; hasRef = false; hasMarkup = false
            } else {
                guard stack.count < maxDepth else { throw fail("nested deeper than \(maxDepth)", at: i) }
                guard !(stack.isEmpty && sawRoot) else { throw fail("content after the root element", at: i) }
                var (element, after) = try name(at: i + 1)
                // Attributes: skipped, quotes honoured (a value may hold `>`).
                var k = after
                var selfClosing = false
                while true {
                    guard k < n else { throw fail("unterminated start tag <\(string(element, b))>", at: i) }
                    let d = b[k]
                    if d == UInt8(ascii: ">") { break }
                    if d == UInt8(ascii: "/") {
                        guard k + 1 < n, b[k + 1] == UInt8(ascii: ">") else { throw fail("bad start tag <\(string(element, b))>", at: i) }
                        selfClosing = true
                        k += 1
                        break
                    }
                    if d == UInt8(ascii: "\"") {
                        k = try skip(past: "\"", from: k + 1, what: "attribute value")
                        continue
                    }
                    if d == UInt8(ascii: "'") {
                        k = try skip(past: "'", from: k + 1, what: "attribute value")
                        continue
                    }
                    if d == UInt8(ascii: "<") || d == 0 { throw fail("bad start tag <\(string(element, b))>", at: i) }
                    k += 1
                }
                element.id = element.slow.map { names.id($0) }
                    ?? names.id(ascii: UnsafeBufferPointer(rebasing: b[element.start..<element.end]))
                sawRoot = true
                stack.append(element)
                open(Path(elements: stack, body: b))
                if selfClosing {
                    close(Path(elements: stack, body: b), Text(utf8: UnsafeBufferPointer(start: nil, count: 0)))
                    stack.removeLast()
                }
                i = k + 1
                textStart = i; hasRef = false; hasMarkup = false
            }
        }
        guard sawRoot else { throw fail("no root element", at: i) }
        guard let last = stack.last else { return }
        throw fail("document ended inside <\(string(last, b))>", at: i)
    }

    /// Whether `s` is UTF-8 (ASCII checked inline, the rest by the standard library).
    @inline(__always) private static func isUTF8(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        var high: UInt8 = 0
        for c in s { high |= c }
        return high < 0x80 || String(validating: s, as: UTF8.self) != nil
    }

    /// Element text with references decoded into `out` (CDATA, marked by NUL bytes, kept
    /// literally); it must be UTF-8.
    private static func decode(_ raw: UnsafeBufferPointer<UInt8>, into out: inout [UInt8], at pos: Int,
                               _ fail: (String, Int) -> XMLReadError) throws {
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(raw.count)
        var i = 0
        var inCDATA = false
        while i < raw.count {
            let c = raw[i]
            if c == 0 { inCDATA.toggle(); i += 1; continue }
            guard c == UInt8(ascii: "&"), !inCDATA else { out.append(c); i += 1; continue }
            // The `;` must come within 12 bytes of the `&`.
            var semi = i + 1
            while semi < min(i + 12, raw.count) && raw[semi] != UInt8(ascii: ";") { semi += 1 }
            guard semi < min(i + 12, raw.count) else { throw fail("unterminated reference", pos) }
            let ref = UnsafeBufferPointer(rebasing: raw[(i + 1)..<semi])
            guard let s = referencedScalar(ref), s.value != 0 else {
                let name = String(decoding: ref, as: UTF8.self)
                throw fail("bad reference &\(name.prefix(10));", pos)
            }
            UTF8.encode(s) { out.append($0) }
            i = semi + 1
        }
        guard out.withUnsafeBufferPointer(isUTF8) else { throw fail("text is not UTF-8", pos) }
    }

    /// The scalar a reference names (`lt`, `gt`, `amp`, `quot`, `apos`, `#` decimal digits or
    /// `#x` hex digits; no sign, no space), or nil.
    private static func referencedScalar(_ ref: UnsafeBufferPointer<UInt8>) -> Unicode.Scalar? {
        func named(_ s: StaticString) -> Bool {
            ref.count == s.utf8CodeUnitCount && starts(ref, s, at: 0)
        }
        if named("lt") { return "<" }
        if named("gt") { return ">" }
        if named("amp") { return "&" }
        if named("quot") { return "\"" }
        if named("apos") { return "'" }
        guard ref.count >= 2, ref[0] == UInt8(ascii: "#") else { return nil }
        // At most 10 bytes: 8 hex or 9 decimal digits cannot overflow a UInt32.
        var v: UInt32 = 0
        if ref[1] == UInt8(ascii: "x") || ref[1] == UInt8(ascii: "X") {
            guard ref.count > 2 else { return nil }
            for c in ref[2...] {
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): v = v << 4 | UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): v = v << 4 | UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): v = v << 4 | UInt32(c - UInt8(ascii: "A") + 10)
                default: return nil
                }
            }
        } else {
            for c in ref[1...] {
                guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
                v = v * 10 + UInt32(c - UInt8(ascii: "0"))
            }
        }
        return Unicode.Scalar(v)
    }
}
