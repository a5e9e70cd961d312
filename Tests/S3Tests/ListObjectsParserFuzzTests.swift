/// Seeded property tests ("fuzz") for `ListObjectsParser.parse` (ListObjectsV2 XML).
///
/// Every case is generated from `SOAK_FUZZ_SEED` (decimal or 0x-hex; default below) and its
/// case number, so a failure names the seed and case that reproduce it. `SOAK_FUZZ_ITERATIONS`
/// overrides the number of cases per property (the defaults keep each test under ~3 s in a
/// debug build).
///
/// Properties:
/// - Round trip: a generated valid document (keys with any XML-legal Unicode, `&<>"'` spelled
///   as named entities, character references, CDATA or literally; whitespace-only keys; sizes up
///   to Int64.max; ETags quoted with `"`, `&quot;` or `&#34;`; times; CommonPrefixes; noise
///   elements, comments, namespaces; url encoding-type) parses to exactly the generated page.
/// - Robustness: random bytes and mutated documents (byte flips, deletions, duplicated or
///   removed tags, entity tricks, huge or negative sizes, deep nesting, bytes that are not UTF-8)
///   either parse or throw a `ListObjectsParseError` with a one-line message, each within a time
///   bound; whatever parses has no negative size. `S3ErrorBody.parse` (same XML reader, bodies of
///   any non-2xx answer) gets the same inputs. These cases run crash-isolated in a child process
///   (see `Isolation`), so a trap is reported with its input instead of killing the test run.
/// - A document cut anywhere before the end of its root element never parses: a truncated
///   listing must not silently lose objects.
/// - Internal entity expansion (billion laughs) and external entities are bounded/not resolved.
import Foundation
import FuzzSupport
import SoakCore
import XCTest
@testable import S3

/// The input, printable in a failure message (escaped, cut at `limit` bytes).
private func show(_ d: Data, limit: Int = 600) -> String {
    var out = ""
    for b in d.prefix(limit) {
        switch b {
        case 0x20...0x7E where b != 0x5C: out.unicodeScalars.append(Unicode.Scalar(b))
        case 0x0A: out += "\\n"
        default: out += String(format: "\\x%02X", b)
        }
    }
    return "\"" + out + "\"" + (d.count > limit ? "…(\(d.count) bytes)" : "")
}

private func show(_ s: String) -> String { show(Data(s.utf8)) }

/// Parses `data` on this thread, returning the outcome and how long it took.
private func timedParse(_ data: Data) -> (Result<ListPage, Error>, Double) {
    let t0 = Date()
    let r = Result { try ListObjectsParser.parse(data) }
    return (r, Date().timeIntervalSince(t0))
}

/// Runs `parse` on another thread; nil when it did not finish within `seconds` (the thread is
/// left running: the test has failed by then).
private func parseWithDeadline(_ data: Data, seconds: Double) -> Result<ListPage, Error>? {
    final class Box: @unchecked Sendable { var result: Result<ListPage, Error>? }  // written before the signal
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        box.result = Result { try ListObjectsParser.parse(data) }
        done.signal()
    }
    guard done.wait(timeout: .now() + seconds) == .success else { return nil }
    return box.result
}

// MARK: - Valid documents

private struct Generated {
    var page = ListPage()
    var xml = ""
}

private enum DocGen {
    /// Literal text that looks like markup, entities or encodings once decoded.
    static let tricky = ["&amp;", "&#34;", "&quot;", "&lt;Key&gt;", "]]>", "<Key>", "</Contents>", "%00", "%2F",
                         "%", "+", "\u{FEFF}", "W/\"", "\"", "..", "/", "&#x0;", "<!--", "-->", "<![CDATA[", "\\",
                         "\u{85}", "\u{2028}", "e\u{301}", "\u{E9}", "😀", "日本", "\u{10FFFF}", "\u{FFFD}"]

    /// A scalar XML 1.0 can carry (Char production), possibly whitespace.
    static func xmlScalar(_ g: inout SeededRandom) -> Unicode.Scalar {
        switch g.int(0...9) {
        case 0...4: return Unicode.Scalar(UInt8(g.int(0x20...0x7E)))
        case 5: return g.pick(["&", "<", ">", "\"", "'", " ", "\t", "\n", "\r", "]"])
        case 6: return Unicode.Scalar(UInt32(g.int(0x80...0x7FF)))!
        case 7:
            var v = UInt32(g.int(0x800...0xFFFD))
            if (0xD800...0xDFFF).contains(v) { v = 0xE000 }
            return Unicode.Scalar(v)!
        default: return Unicode.Scalar(UInt32(g.int(0x10000...0x10FFFF)))!
        }
    }

    /// A key (or prefix). With `anyScalar` (url encoding-type) it may hold what XML cannot:
    /// control characters, NUL, U+FFFE.
    static func key(_ g: inout SeededRandom, anyScalar: Bool) -> String {
        if g.chance(0.04) { return g.pick([" ", "  ", "\t", "\n", " \n\t ", "\r\n"]) }  // whitespace only
        var s = ""
        for _ in 0..<g.int(1...30) {
            if g.chance(0.1) { s += g.pick(tricky); continue }
            if anyScalar && g.chance(0.1) {
                s.unicodeScalars.append(Unicode.Scalar(UInt32(g.pick([g.int(0...0x1F), 0x7F, 0xFFFE, 0xFFFF])))!)
                continue
            }
            s.unicodeScalars.append(xmlScalar(&g))
        }
        if g.chance(0.1) { s = " " + s + " " }
        return s
    }

    /// `text` as XML character data, each character spelled one of the legal ways (or all of it
    /// as CDATA). `\r` is always a reference: a literal one would be normalized to `\n`.
    static func escape(_ text: String, _ g: inout SeededRandom) -> String {
        // Byte-wise: String.contains matches Characters, and "]]>" + a combining mark is no "]]>".
        if Mutate.firstIndex(of: Array("]]>".utf8), in: Array(text.utf8), from: 0) == nil,
           !text.unicodeScalars.contains("\r"), g.chance(0.15) {
            return "<![CDATA[" + text + "]]>"
        }
        var out = ""
        for sc in text.unicodeScalars {
            let v = sc.value
            func ref() -> String { g.chance(0.5) ? "&#\(v);" : "&#x\(String(v, radix: 16, uppercase: g.chance(0.5)));" }
            switch sc {
            case "&": out += g.chance(0.6) ? "&amp;" : ref()
            case "<": out += g.chance(0.6) ? "&lt;" : ref()
            case ">": out += out.utf8.reversed().starts(with: [0x5D, 0x5D]) || g.chance(0.5) ? "&gt;" : ">"
            case "\"": out += g.pick(["\"", "&quot;", "&#34;"])
            case "'": out += g.pick(["'", "&apos;", "&#39;"])
            case "\r": out += ref()
            default: out += g.chance(0.05) ? ref() : String(sc)
            }
        }
        return out
    }

    /// `encoding-type=url` spelling: unreserved bytes as they are, space as `+`, the rest `%XX`;
    /// some non-ASCII left literal (the decoder passes UTF-8 through).
    static func urlEncode(_ text: String, _ g: inout SeededRandom) -> String {
        var out = ""
        for sc in text.unicodeScalars {
            if sc.value > 0x7F, sc.value != 0xFFFE, sc.value != 0xFFFF, g.chance(0.3) {
                out.unicodeScalars.append(sc)
                continue
            }
            for b in String(sc).utf8 {
                switch b {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                     UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                     UInt8(ascii: "~"):
                    out.unicodeScalars.append(Unicode.Scalar(b))
                case UInt8(ascii: " ") where g.chance(0.8):
                    out += "+"
                default:
                    out += "%" + String(format: g.chance(0.8) ? "%02X" : "%02x", b)
                }
            }
        }
        return out
    }

    static func size(_ g: inout SeededRandom) -> Int64 {
        switch g.int(0...6) {
        case 0: return 0
        case 1: return Int64(g.int(1...1024))
        case 2: return Int64(1) << Int64(g.int(31...62)) + Int64(g.int(-1...1))
        case 3: return Int64.max
        case 4: return Int64.max - Int64(g.int(0...1000))
        default: return Int64.random(in: 0...Int64.max, using: &g)
        }
    }

    static func etag(_ g: inout SeededRandom) -> String {
        let hex = String((0..<32).map { _ in g.pick(Array("0123456789abcdef")) })
        return g.chance(0.3) ? hex + "-\(g.int(1...10000))" : hex
    }

    /// ISO 8601 text and the seconds it means (computed with Foundation's calendar, not the
    /// parser's own arithmetic).
    static func time(_ g: inout SeededRandom) -> (String, Double) {
        let secs = g.int(0...4_102_444_799)  // up to 2099-12-31
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second],
                                   from: Date(timeIntervalSince1970: Double(secs)))
        func p(_ v: Int?, _ w: Int) -> String { String(format: "%0\(w)d", v ?? 0) }
        var text = "\(p(c.year, 4))-\(p(c.month, 2))-\(p(c.day, 2))T\(p(c.hour, 2)):\(p(c.minute, 2)):\(p(c.second, 2))"
        var value = Double(secs)
        if g.chance(0.6) {
            let ms = g.int(0...999)
            text += "." + p(ms, 3)
            value += Double(ms) / 1000
        }
        text += g.pick(["Z", "Z", "+00:00", ""])
        return (text, value)
    }

    static func document(_ g: inout SeededRandom) -> Generated {
        var out = Generated()
        let url = g.chance(0.25)
        let ns = g.int(0...2)  // 0: none, 1: default namespace, 2: s3: prefix
        func tag(_ name: String) -> String { ns == 2 && g.chance(0.8) ? "s3:" + name : name }
        func el(_ name: String, _ body: String) -> String {
            let t = tag(name)
            return body.isEmpty && g.chance(0.3) ? "<\(t)/>" : "<\(t)>\(body)</\(t)>"
        }
        func sep() -> String { g.chance(0.3) ? g.pick(["\n", "\n  ", " ", "\t", "<!-- c -->", "\n<!--x&y-->\n"]) : "" }
        func text(_ s: String) -> String { url ? escape(urlEncode(s, &g), &g) : escape(s, &g) }

        var items: [String] = []
        // Top-level noise, which must not leak into objects or prefixes.
        for name in ["Name", "Prefix", "Delimiter", "MaxKeys", "KeyCount", "StartAfter", "ContinuationToken"] where g.chance(0.4) {
            items.append(el(name, escape(key(&g, anyScalar: false), &g)))
        }
        let objects = g.chance(0.1) ? 0 : g.int(1...8)
        for _ in 0..<objects {
            let k = DocGen.key(&g, anyScalar: url)
            let size = DocGen.size(&g)
            var fields: [String] = [el("Key", text(k))]
            var sizeText = String(size)
            if g.chance(0.1) { sizeText = g.pick([" ", "\n ", "00"]) + sizeText + g.pick([" ", "\n", ""]) }
            fields.append(el("Size", sizeText))
            var etag = ""
            if g.chance(0.9) {
                etag = DocGen.etag(&g)
                let q = g.pick(["&quot;", "&#34;", "\"", "&#x22;", ""])
                fields.append(el("ETag", g.pick(["", " ", "\n"]) + q + etag + q))
            }
            var modified: Double? = nil
            if g.chance(0.8) {
                let (t, v) = time(&g)
                fields.append(el("LastModified", t))
                modified = v
            }
            if g.chance(0.3) { fields.append(el("StorageClass", "STANDARD")) }
            if g.chance(0.2) { fields.append(el("Owner", el("ID", "0") + el("DisplayName", "a&amp;b"))) }
            if g.chance(0.2) { fields.append(el("ChecksumAlgorithm", "CRC32")) }
            fields.shuffle(using: &g)
            let c = tag("Contents")
            items.append("<\(c)>" + fields.map { sep() + $0 }.joined() + sep() + "</\(c)>")
            out.page.objects.append(ObjectInfo(key: k, size: size, etag: etag, lastModified: modified))
        }
        for _ in 0..<(g.chance(0.5) ? 0 : g.int(1...4)) {
            let p = key(&g, anyScalar: url) + "/"
            items.append(el("CommonPrefixes", el("Prefix", text(p))))
            out.page.commonPrefixes.append(p)
        }
        if g.chance(0.8) {
            out.page.isTruncated = g.chance(0.5)
            items.append(el("IsTruncated", (g.chance(0.1) ? " " : "") + (out.page.isTruncated ? "true" : "false")))
        }
        if g.chance(0.5) {
            let chars = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=%")
            let token = String((0..<g.int(1...80)).map { _ in g.pick(chars) })
            out.page.nextContinuationToken = token
            items.append(el("NextContinuationToken", escape(token, &g)))
        }
        if url { items.append(el("EncodingType", "url")) }
        // Objects keep their order, and prefixes theirs, whatever else is interleaved.
        items = interleave(items, &g)

        var xml = g.chance(0.5) ? "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + sep() : ""
        if g.chance(0.05) { xml = "\u{FEFF}" + xml }
        let root = tag("ListBucketResult")
        let nsDecl = ns == 1 ? " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""
            : ns == 2 ? " xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\"" : ""
        xml += "<\(root)\(nsDecl)>" + items.map { sep() + $0 }.joined() + sep() + "</\(root)>"
        if g.chance(0.3) { xml += "\n" }
        out.xml = xml
        return out
    }

    /// A random merge of `items` that keeps `<Contents>` in order and `<CommonPrefixes>` in order.
    static func interleave(_ items: [String], _ g: inout SeededRandom) -> [String] {
        func isContents(_ s: String) -> Bool { s.hasPrefix("<Contents>") || s.hasPrefix("<s3:Contents>") }
        func isPrefix(_ s: String) -> Bool { s.hasPrefix("<CommonPrefixes>") || s.hasPrefix("<s3:CommonPrefixes>") }
        var contents = items.filter(isContents)[...]
        var prefixes = items.filter(isPrefix)[...]
        var others = items.filter { !isContents($0) && !isPrefix($0) }[...]
        var out: [String] = []
        while !contents.isEmpty || !prefixes.isEmpty || !others.isEmpty {
            switch g.int(0...2) {
            case 0: if let x = contents.popFirst() { out.append(x) }
            case 1: if let x = prefixes.popFirst() { out.append(x) }
            default: if let x = others.popFirst() { out.append(x) }
            }
        }
        return out
    }
}

private func sameBytes(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

/// Line breaks and control characters other than tab (C0, DEL, C1, U+2028/2029).
private func isControl(_ s: Unicode.Scalar) -> Bool {
    switch s.value {
    case 0x09: return false
    case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029: return true
    default: return false
    }
}

// MARK: - Mutations

private enum Mutate {
    static let tokens = [
        "<Contents>", "</Contents>", "<Key>", "</Key>", "<Key/>", "<Size>", "</Size>", "<Size>-1</Size>",
        "<Size>99999999999999999999999</Size>", "<Size>9223372036854775808</Size>", "<Size>+7</Size>",
        "<Size>0x10</Size>", "<Size>1e3</Size>", "<Size> </Size>", "&#34;", "&#x0;", "&#0;", "&#1;", "&#x1F;",
        "&#xFFFE;", "&#xD800;", "&#1114112;", "&#99999999999999999999;", "&#x;", "&#;", "&amp;amp;", "&amp",
        "&unknown;", "&lt;&lt;", "&#60;Key&#62;", "<![CDATA[", "]]>", "<!--", "-->", "<?xml version='1.0'?>",
        "<?pi x?>", "<!DOCTYPE ListBucketResult [<!ENTITY e 'v'>]>", "&e;", "\u{0}", "\u{FFFF}", "\u{FEFF}",
        "<ListBucketResult>", "</ListBucketResult>", "<CommonPrefixes>", "<Prefix>", "</Prefix>",
        "<EncodingType>url</EncodingType>", "%", "%C3", "%FF%FE", "xmlns:s3=\"x\"", "<s3:Key>", "<a:b:c>",
        "<Key attr=\"&quot;\">", "<Key a='1' a='2'>", "\r\n", "\u{85}", "😀", "<\u{E9}>",
    ]

    static func apply(_ input: [UInt8], _ g: inout SeededRandom) -> [UInt8] {
        var b = input
        for _ in 0..<g.int(1...4) {
            let n = b.count
            switch g.int(0...8) {
            case 0 where n > 0:  // flip bits
                b[g.int(0...n - 1)] ^= UInt8(1 << g.int(0...7))
            case 1 where n > 0:  // an interesting byte
                b[g.int(0...n - 1)] = g.pick([0x00, 0x3C, 0x3E, 0x26, 0x2F, 0x22, 0x5D, 0xFF, 0xC3, 0x80, 0x0D, 0x3B])
            case 2 where n > 1:  // delete a range
                let a = g.int(0...n - 1)
                b.removeSubrange(a..<min(n, a + g.int(1...40)))
            case 3 where n > 1:  // duplicate a range elsewhere
                let a = g.int(0...n - 1)
                let piece = b[a..<min(n, a + g.int(1...80))]
                b.insert(contentsOf: piece, at: g.int(0...n))
            case 4:  // insert a token
                b.insert(contentsOf: Array(g.pick(tokens).utf8), at: g.int(0...n))
            case 5 where n > 0:  // truncate
                b.removeSubrange(g.int(0...n - 1)...)
            case 6:  // remove one whole tag
                let opens = b.indices.filter { b[$0] == 0x3C }
                if let a = opens.isEmpty ? nil : g.pick(opens), let e = b[a...].firstIndex(of: 0x3E) {
                    b.removeSubrange(a...e)
                }
            case 7:  // duplicate one whole tag
                let opens = b.indices.filter { b[$0] == 0x3C }
                if let a = opens.isEmpty ? nil : g.pick(opens), let e = b[a...].firstIndex(of: 0x3E) {
                    b.insert(contentsOf: b[a...e], at: g.chance(0.5) ? e + 1 : a)
                }
            default:  // replace a Size value with something hostile
                if let r = findRange(b, "<Size>", "</Size>") {
                    let v = g.pick(["-1", "-9223372036854775808", "9223372036854775808", "18446744073709551616",
                                    String(repeating: "9", count: g.int(20...5000)), "", "NaN", "1.5", "&#45;1", " 5 "])
                    b.replaceSubrange(r, with: Array(v.utf8))
                }
            }
        }
        return b
    }

    static func findRange(_ b: [UInt8], _ open: String, _ close: String) -> Range<Int>? {
        let o = Array(open.utf8), c = Array(close.utf8)
        guard let a = firstIndex(of: o, in: b, from: 0), let e = firstIndex(of: c, in: b, from: a + o.count) else { return nil }
        return (a + o.count)..<e
    }

    static func firstIndex(of needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard needle.count <= hay.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i..<i + needle.count].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

// MARK: - Tests

// MARK: - Crash isolation

/// A trap in the parser (or in Foundation under it) would end the whole test process, hiding
/// every later test and the input that did it. So the robustness properties run their cases in a
/// child copy of this test binary (`/proc/self/exe`, filtered to the same test), which records
/// each case number before trying it; when the child dies on a signal, the parent regenerates
/// that case, reports it with the seed, saves it to a file and goes on from the next case. A child
/// stops at its first failed assertion too, and the parent goes on after that case as well, up to
/// three incidents per test. Without /proc (not Linux) the cases simply run in-process.
private enum Isolation {
    static let env = ProcessInfo.processInfo.environment
    /// Crashes or failing cases reported per test before giving up.
    static let maxCrashes = 3
    /// A child that starts no new case for this long is stuck on its current one.
    static let stuckAfter = 60.0
}

final class ListObjectsParserFuzzTests: XCTestCase {
    /// One reproducer per failing property, not thousands of repeats (`continueAfterFailure`
    /// does not stop a loop in swift-corelibs-xctest).
    private var failed: Bool { (testRun?.totalFailureCount ?? 0) > 0 }

    /// Longest one parse of a small input may take (debug build, busy CI machine).
    static let slowParse = 2.0

    private func checkOutcome(_ r: Result<ListPage, Error>, seconds: Double, input: Data, ctx: String,
                              limit: Double = slowParse, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThan(seconds, limit, "parse took \(seconds) s on \(show(input)) \(ctx)", file: file, line: line)
        switch r {
        case .success(let page):
            XCTAssertFalse(page.objects.contains { $0.size < 0 }, "negative size from \(show(input)) \(ctx)", file: file, line: line)
        case .failure(let e):
            guard let pe = e as? ListObjectsParseError else {
                return XCTFail("threw \(type(of: e)) \(e), not ListObjectsParseError, on \(show(input)) \(ctx)", file: file, line: line)
            }
            XCTAssertFalse(pe.description.isEmpty, ctx, file: file, line: line)
            // One line, and nothing a terminal would act on (the message ends up in a log).
            XCTAssertFalse(pe.description.unicodeScalars.contains { isControl($0) },
                           "multi-line message or control characters: \(pe.description.debugDescription) \(ctx)",
                           file: file, line: line)
        }
    }

    /// Parses `data` (as a listing and as an error body: both go through the same XML reader and
    /// both read bytes a server chose) and checks the outcome.
    private func robust(_ data: Data, ctx: String, limit: Double = slowParse) {
        let (r, t) = timedParse(data)
        checkOutcome(r, seconds: t, input: data, ctx: ctx, limit: limit)
        let t0 = Date()
        if let e = S3ErrorBody.parse(data) { XCTAssertFalse(e.code.isEmpty, ctx) }
        XCTAssertLessThan(Date().timeIntervalSince(t0), limit, "error-body parse was slow on \(show(data)) \(ctx)")
    }

    /// Runs `check(i)` for cases `0..<count` of property `name` in a child process (see
    /// `Isolation`); `input(i)` regenerates case `i` for the report when the child crashes or hangs.
    private func isolated(_ name: String, count: Int, function: String = #function,
                          input: (Int) -> Data, check: (Int) -> Void) {
        let selector = "S3Tests.ListObjectsParserFuzzTests/" + function.replacingOccurrences(of: "()", with: "")
        let env = Isolation.env
        if env["SOAK_FUZZ_CHILD"] == selector, let progress = env["SOAK_FUZZ_PROGRESS"] {
            let from = Int(env["SOAK_FUZZ_FROM"] ?? "") ?? 0
            let h = FileHandle(forWritingAtPath: progress)
            for i in from..<count {
                if failed { break }
                h?.write(Data("\(i)\n".utf8))  // write(2): on disk even if the next line crashes
                check(i)
            }
            return
        }
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
            for i in 0..<count where !failed { check(i) }
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("soak-fuzz-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var from = 0, crashes = 0
        while from < count {
            let progress = dir.appendingPathComponent("progress"), output = dir.appendingPathComponent("output")
            _ = FileManager.default.createFile(atPath: progress.path, contents: nil)
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = [selector]
            var childEnv = env
            childEnv["SOAK_FUZZ_CHILD"] = selector
            childEnv["SOAK_FUZZ_PROGRESS"] = progress.path
            childEnv["SOAK_FUZZ_FROM"] = String(from)
            childEnv["SWIFT_BACKTRACE"] = "enable=no"
            p.environment = childEnv
            p.standardInput = FileHandle.nullDevice
            guard let out = try? FileHandle(forWritingTo: output) else { return XCTFail("cannot write \(output.path)") }
            p.standardOutput = out
            p.standardError = out
            do { try p.run() } catch { return XCTFail("cannot start the child test process \(exe): \(error)") }
            // Hung = no new case started for `stuckAfter` seconds (however long the whole run takes).
            var lastSize = -1, lastChange = Date()
            while p.isRunning {
                usleep(20_000)
                let size = (try? FileManager.default.attributesOfItem(atPath: progress.path)[.size] as? Int) ?? 0
                if size != lastSize { lastSize = size; lastChange = Date() }
                if Date().timeIntervalSince(lastChange) > Isolation.stuckAfter { break }
            }
            let hung = p.isRunning
            if hung { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            try? out.close()
            let last = ((try? String(contentsOf: progress, encoding: .utf8)) ?? "").split(separator: "\n").last.flatMap { Int($0) }
            let log = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            if hung || p.terminationReason == .uncaughtSignal {
                guard let i = last else {
                    return XCTFail("the child test process \(hung ? "hung" : "died on signal \(p.terminationStatus)") before its first case: \(log.suffix(2000))")
                }
                let data = input(i)
                let saved = FileManager.default.temporaryDirectory.appendingPathComponent("soak-fuzz-\(name)-case\(i).bin")
                try? data.write(to: saved)
                XCTFail("\(hung ? "hang (stuck over \(Int(Isolation.stuckAfter)) s)" : "crash (signal \(p.terminationStatus))") "
                        + "parsing \(show(data)) \(Fuzz.context(name, i)); input saved to \(saved.path)")
                crashes += 1
                if hung || crashes >= Isolation.maxCrashes { return }
                from = i + 1
                continue
            }
            if p.terminationStatus != 0 {
                // The child stops at its first failing case; report it and go on after it.
                let errors = log.split(separator: "\n").filter { $0.contains("error:") || $0.contains("Fatal") }
                XCTFail("child test process failed (exit \(p.terminationStatus)):\n" + errors.prefix(10).joined(separator: "\n")
                        + (errors.isEmpty ? String(log.suffix(3000)) : ""))
                crashes += 1
                if let i = last, crashes < Isolation.maxCrashes { from = i + 1; continue }
            }
            return
        }
    }

    // MARK: Round trip

    func testGeneratedDocumentsRoundTrip() {
        let name = "roundTrip"
        for i in 0..<Fuzz.iterations(1200) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            let doc = DocGen.document(&g)
            let data = Data(doc.xml.utf8)
            let ctx = "\(show(data)) \(Fuzz.context(name, i))"
            let page: ListPage
            do { page = try ListObjectsParser.parse(data) } catch {
                XCTFail("valid document refused: \(error) \(ctx)")
                continue
            }
            let want = doc.page
            XCTAssertEqual(page.objects.count, want.objects.count, ctx)
            for (o, w) in zip(page.objects, want.objects) {
                XCTAssertTrue(sameBytes(o.key, w.key), "key \(o.key.debugDescription) != \(w.key.debugDescription) \(ctx)")
                XCTAssertEqual(o.size, w.size, ctx)
                XCTAssertTrue(sameBytes(o.etag, w.etag), "etag \(o.etag.debugDescription) != \(w.etag.debugDescription) \(ctx)")
                switch (o.lastModified, w.lastModified) {
                case (nil, nil): break
                case (let a?, let b?): XCTAssertEqual(a, b, accuracy: 1e-6, ctx)
                default: XCTFail("lastModified \(String(describing: o.lastModified)) != \(String(describing: w.lastModified)) \(ctx)")
                }
            }
            XCTAssertEqual(page.commonPrefixes.count, want.commonPrefixes.count, ctx)
            for (p, w) in zip(page.commonPrefixes, want.commonPrefixes) {
                XCTAssertTrue(sameBytes(p, w), "prefix \(p.debugDescription) != \(w.debugDescription) \(ctx)")
            }
            XCTAssertEqual(page.isTruncated, want.isTruncated, ctx)
            XCTAssertEqual(page.nextContinuationToken, want.nextContinuationToken, ctx)
        }
    }

    // MARK: Robustness (crash-isolated)

    private static let markup = Array("<>/&;#x0123456789abcdefKeySizContentsListBucketResult =\"'![]CDATA-?:\n".utf8)

    private static func randomInput(_ i: Int) -> Data {
        var g = Fuzz.rng("randomBytes", i)
        let n = g.int(0...300)
        switch g.int(0...3) {
        case 0: return Data((0..<n).map { _ in UInt8(truncatingIfNeeded: g.next()) })
        case 1: return Data((0..<n).map { _ in g.pick(markup) })
        case 2:
            // Markup-ish text with a few arbitrary bytes (invalid UTF-8 among them).
            return Data((0..<n).map { _ in g.chance(0.1) ? UInt8(truncatingIfNeeded: g.next()) : g.pick(markup) })
        default:
            // A root element around random markup-ish content.
            return Data("<ListBucketResult>".utf8) + Data((0..<n).map { _ in g.pick(markup) }) + Data("</ListBucketResult>".utf8)
        }
    }

    func testRandomBytesParseOrThrow() {
        isolated("randomBytes", count: Fuzz.iterations(5000), input: Self.randomInput) { i in
            robust(Self.randomInput(i), ctx: Fuzz.context("randomBytes", i))
        }
    }

    private static func mutatedInput(_ i: Int) -> Data {
        var g = Fuzz.rng("mutations", i)
        let doc = DocGen.document(&g)
        return Data(Mutate.apply(Array(doc.xml.utf8), &g))
    }

    func testMutatedDocumentsParseOrThrow() {
        isolated("mutations", count: Fuzz.iterations(4000), input: Self.mutatedInput) { i in
            robust(Self.mutatedInput(i), ctx: Fuzz.context("mutations", i))
        }
    }

    /// Every strict prefix that ends before `</ListBucketResult>` is complete must be refused;
    /// cuts after it (trailing whitespace) change nothing.
    func testTruncationAtEveryLengthThrows() {
        let name = "truncation"
        var docs: [(bytes: [UInt8], end: Int)] = []
        // Each document is cut at every length (~1000 parses), so it takes 200 iterations' worth.
        for i in 0..<max(1, Fuzz.iterations(1000) / 200) {
            var g = Fuzz.rng(name, i)
            var doc = DocGen.document(&g)
            while doc.xml.utf8.count > 1200 { doc = DocGen.document(&g) }
            let bytes = Array(doc.xml.utf8)
            let close = Array("ListBucketResult>".utf8)
            var end = bytes.count
            while end >= close.count, !bytes[(end - close.count)..<end].elementsEqual(close) { end -= 1 }
            docs.append((bytes, end))
        }
        // Case numbers run over every (document, length) pair.
        var cases: [(doc: Int, length: Int)] = []
        for (d, doc) in docs.enumerated() { for n in 0...doc.bytes.count { cases.append((d, n)) } }
        func input(_ c: Int) -> Data { Data(docs[cases[c].doc].bytes[0..<cases[c].length]) }
        var full: [Int: ListPage] = [:]
        isolated(name, count: cases.count, input: input) { c in
            let (d, n) = cases[c]
            let data = input(c)
            let ctx = "cut at \(n) of \(docs[d].bytes.count): \(show(data)) \(Fuzz.context(name, d))"
            let r = Result { try ListObjectsParser.parse(data) }
            if n < docs[d].end {
                if case .success(let p) = r { XCTFail("a truncated listing parsed (\(p.objects.count) objects) \(ctx)") }
                if case .failure(let e) = r { XCTAssertTrue(e is ListObjectsParseError, "\(e) \(ctx)") }
            } else {
                if full[d] == nil { full[d] = try? ListObjectsParser.parse(Data(docs[d].bytes)) }
                XCTAssertNotNil(full[d], ctx)
                XCTAssertEqual(try? r.get(), full[d], ctx)
            }
        }
    }

    // MARK: Hand-picked hostile inputs

    private static func contents(_ inner: String) -> Data {
        Data("<ListBucketResult><Contents>\(inner)</Contents></ListBucketResult>".utf8)
    }

    /// What a hand-picked input must do, beyond parsing or throwing in bounded time. Objects are
    /// written "key:size".
    private enum Expect {
        case parse([String])
        case refuse
        /// References to characters XML 1.0 cannot hold (`&#1;`): S3 sends keys with them unless
        /// asked for url encoding, so a reader may accept them, but then decoded exactly.
        case ifParsed([String])
        case anything
    }

    private static let handPicked: [(Data, Expect)] = {
        var cases: [(Data, Expect)] = []
        func key(_ k: String, _ want: Expect) { cases.append((contents("<Key>\(k)</Key><Size>1</Size>"), want)) }
        func size(_ s: String, _ want: Int64?) {
            cases.append((contents("<Key>k</Key><Size>\(s)</Size>"), want.map { .parse(["k:\($0)"]) } ?? .refuse))
        }
        func any(_ d: Data) { cases.append((d, .anything)) }
        // References decode exactly once.
        key("a&#34;b&quot;c&#x22;d", .parse(["a\"b\"c\"d:1"]))
        key("&amp;amp;", .parse(["&amp;:1"]))
        key("&amp;#34;", .parse(["&#34;:1"]))
        key("&#38;#38;", .parse(["&#38;:1"]))
        key("&lt;Key&gt;x&lt;/Key&gt;", .parse(["<Key>x</Key>:1"]))
        key("<![CDATA[&amp;]]>", .parse(["&amp;:1"]))
        key("<![CDATA[a]]>&amp;<![CDATA[&lt;]]>", .parse(["a&&lt;:1"]))
        key("&#x1F600;&#128512;", .parse(["😀😀:1"]))
        // NUL, surrogates, values past U+10FFFF and malformed references are errors, never
        // silently dropped or replaced bytes.
        for bad in ["&#x0;", "&#0;", "&#xD800;", "&#55296;", "&#x110000;", "&#1114112;", "&#99999999999999999999;",
                    "&#;", "&#x;", "&#xZZ;", "&amp", "& amp;", "&unknown;", "a\u{0}b", "<![CDATA[a\u{0}b]]>"] { key(bad, .refuse) }
        for (ref, scalar) in [("&#1;", "\u{1}"), ("&#x1F;", "\u{1F}"), ("&#xFFFE;", "\u{FFFE}"), ("&#x7F;", "\u{7F}"),
                              ("a\u{1}b", "a\u{1}b")] {
            key(ref, .ifParsed(["\(scalar):1"]))
        }
        // Sizes: an Int64 or an error.
        size("9223372036854775807", Int64.max)
        size(" 42\n", 42)
        for bad in ["-1", "-0x1", "9223372036854775808", "18446744073709551616", String(repeating: "9", count: 100_000),
                    "1.5", "1e3", "0x10", "NaN", "", " ", "&#45;1", "٣"] { size(bad, nil) }
        // A refused key is named in the error, which must stay one line (it ends up in a log).
        cases.append((contents("<Key>a&#10;soak: error: injected&#13;</Key><Size>-1</Size>"), .refuse))
        cases.append((contents("<Key>a\nb</Key><Size>x</Size>"), .refuse))
        cases.append((contents("<Key>&a\nb;</Key><Size>1</Size>"), .refuse))               // named in "bad reference"
        cases.append((Data("<ListBucketResult><a\u{1B}[2J></b></ListBucketResult>".utf8), .refuse))  // in "mismatched"
        cases.append((contents("<Size>1</Size>"), .refuse))  // no Key
        cases.append((contents("<Key>k</Key>"), .refuse))    // no Size
        // Element names and text that are not UTF-8 (a Latin-1 page from a proxy, a corrupted body).
        any(Data([0x3C, 0xE9, 0x69, 0x6F, 0x6E]))
        any(Data("<ListBucketResult><".utf8) + Data([0xE9]) + Data("x/></ListBucketResult>".utf8))
        any(Data("<Error><".utf8) + Data([0xE9]) + Data("/></Error>".utf8))
        cases.append((Data("<ListBucketResult><Contents><Key>".utf8) + Data([0xFF, 0xFE])
                       + Data("</Key><Size>1</Size></Contents></ListBucketResult>".utf8), .refuse))
        // Deep nesting, inside and outside <Contents>.
        for depth in [300, 5_000, 100_000] {
            let open = String(repeating: "<a>", count: depth), close = String(repeating: "</a>", count: depth)
            any(Data("<ListBucketResult>\(open)x\(close)</ListBucketResult>".utf8))
            any(contents("<Key>k</Key><Size>1</Size>\(open)\(close)"))
            any(Data((String(repeating: "<Contents>", count: depth) + String(repeating: "</Contents>", count: depth)).utf8))
        }
        // Many attributes (ignored), a huge text node, a long run of references.
        cases.append((contents("<Key " + (0..<2000).map { "a\($0)=\"\($0)>\"" }.joined(separator: " ") + ">k</Key><Size>1</Size>"),
                      .parse(["k:1"])))
        cases.append((contents("<Key>" + String(repeating: "x", count: 4 << 20) + "</Key><Size>1</Size>"),
                      .ifParsed([String(repeating: "x", count: 4 << 20) + ":1"])))
        cases.append((contents("<Key>" + String(repeating: "&#x1F600;&amp;", count: 100_000) + "</Key><Size>1</Size>"),
                      .ifParsed([String(repeating: "😀&", count: 100_000) + ":1"])))
        return cases
    }()

    func testEntityTricksNestingAndHugeNumbers() {
        let cases = Self.handPicked
        isolated("handPicked", count: cases.count, input: { cases[$0].0 }) { i in
            let (data, expect) = cases[i]
            let ctx = "\(show(data, limit: 200)) [hand-picked case \(i)]"
            let t0 = Date()
            let r = Result { try ListObjectsParser.parse(data) }
            checkOutcome(r, seconds: Date().timeIntervalSince(t0), input: data.prefix(200), ctx: ctx, limit: 20)
            let got = (try? r.get())?.objects.map { "\($0.key):\($0.size)" }
            switch expect {
            case .parse(let want):
                if let got { XCTAssertTrue(got.elementsEqual(want) { sameBytes($0, $1) }, "\(got.map { $0.prefix(80) }) \(ctx)") } else {
                    XCTFail("refused (\(r)), should parse: \(ctx)")
                }
            case .refuse:
                if let got { XCTFail("parsed as \(got), should be refused: \(ctx)") }
            case .ifParsed(let want):
                if let got { XCTAssertTrue(got.elementsEqual(want) { sameBytes($0, $1) }, "\(got.map { $0.prefix(80) }) \(ctx)") }
            case .anything:
                break
            }
        }
    }

    /// Exponential internal entities must not expand without bound, and external entities must
    /// not be read (XXE): neither a file's content nor a hang.
    func testEntityExpansionIsBoundedAndExternalEntitiesAreNotResolved() throws {
        var dtd = "<!ENTITY e0 \"0123456789\">"
        for i in 1...12 { dtd += "<!ENTITY e\(i) \"" + String(repeating: "&e\(i - 1);", count: 10) + "\">" }
        let laughs = Data("""
            <?xml version="1.0"?><!DOCTYPE ListBucketResult [\(dtd)]>\
            <ListBucketResult><Contents><Key>&e12;</Key><Size>1</Size></Contents></ListBucketResult>
            """.utf8)
        let r = parseWithDeadline(laughs, seconds: 20)
        XCTAssertNotNil(r, "billion laughs did not finish in 20 s")
        if case .success(let p)? = r {
            XCTAssertLessThan(p.objects.first?.key.utf8.count ?? 0, 10_000_000, "entities expanded without bound")
        }

        let secret = FileManager.default.temporaryDirectory.appendingPathComponent("soak-xxe-\(UUID().uuidString)")
        try Data("SOAK-XXE-CANARY".utf8).write(to: secret)
        defer { try? FileManager.default.removeItem(at: secret) }
        for decl in ["<!ENTITY x SYSTEM \"file://\(secret.path)\">", "<!ENTITY x SYSTEM \"\(secret.path)\">",
                     "<!ENTITY % p SYSTEM \"file://\(secret.path)\"> %p;"] {
            let xxe = Data("""
                <?xml version="1.0"?><!DOCTYPE ListBucketResult [\(decl)]>\
                <ListBucketResult><Contents><Key>k&x;</Key><Size>1</Size></Contents></ListBucketResult>
                """.utf8)
            let r = parseWithDeadline(xxe, seconds: 20)
            XCTAssertNotNil(r)
            if case .success(let p)? = r {
                XCTAssertFalse(p.objects.contains { $0.key.contains("CANARY") }, "external entity resolved: \(p.objects)")
            }
        }
    }
}
