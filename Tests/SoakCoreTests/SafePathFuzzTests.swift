/// Seeded property tests ("fuzz") for the key → path sanitizer (`SafePath`, `PathError`,
/// `PathConflicts`).
///
/// Every case is generated from `SOAK_FUZZ_SEED` (decimal or 0x-hex; default below) and its
/// case number, so a failure names the seed and case that reproduce it. `SOAK_FUZZ_ITERATIONS`
/// overrides the number of cases per property (the defaults keep each test well under 3 s in a
/// debug build).
///
/// Properties:
/// - `fromKey` on hostile keys (`..`, `.`, empty components, leading `/`, backslashes, NUL,
///   control characters, combining marks, components over 255 bytes, paths over 4095 bytes)
///   agrees exactly with an independent byte-level model of the documented rules, and anything
///   it accepts is the key itself, split on `/`, with every component safe, and lexically
///   inside any root it is resolved under. Accepted results are deterministic.
/// - `PathError.printable` (and so every error message) never emits control characters, line
///   breaks or bidi overrides, and short inputs can be recovered from its output unambiguously.
/// - `SafePath.isContained` agrees with a depth count for paths built from a root plus hostile
///   components.
/// - `PathConflicts.find` keeps every distinct path once, as a file or as a conflict, and no kept
///   file is a directory of another.
import Foundation
import FuzzSupport
import SoakCore
import XCTest

/// Swift string literal spelling of `s`, for failure messages (every scalar visible).
private func show(_ s: String, limit: Int = 300) -> String {
    var out = ""
    for (n, sc) in s.unicodeScalars.enumerated() {
        if n == limit { out += "…(\(s.utf8.count) bytes)"; break }
        if isUnsafeForTerminal(sc) || sc.value == 0xA0 || sc.value > 0x7E && sc.properties.generalCategory == .format {
            out += "\\u{\(String(sc.value, radix: 16))}"
        } else if sc == "\\" || sc == "\"" {
            out += "\\" + String(sc)
        } else {
            out.unicodeScalars.append(sc)
        }
    }
    return "\"" + out + "\""
}

// MARK: - Hostile keys

private enum KeyGen {
    static let nasty: [String] = [
        "..", ".", "", "...", ". ", " .", ".. ", " ..", "..\u{301}", ".\u{301}", "\u{2024}\u{2024}", "．．",
        "\\..\\", "..\\..", "a\\b", "\\", "C:\\x", "~", "-", "*", "?", "%2e%2e", "%2F", ".soak-partial",
        ".soak", "\u{0}", "a\u{0}b", "\t", "\n", "\r", "\u{1B}[31m", "\u{7F}", "\u{85}", "\u{9F}", "\u{A0}",
        "\u{202E}txt.exe", "\u{2028}", "\u{FEFF}", "\u{200B}", "\u{FFFD}", "😀", "ü", "日本語",
        "\u{E9}", "e\u{301}", "\u{301}", "con", "nul", "aux.txt", " ", "  ", "'", "\"", "$(x)", "`x`",
    ]

    static func component(_ g: inout SeededRandom) -> String {
        switch g.int(0...9) {
        case 0...3: return g.pick(nasty)
        case 4:
            // Near the 255-byte limit, in 1- to 4-byte scalars.
            let unit = g.pick(["a", "é", "日", "😀", ".", "\\"])
            let count = g.int(max(1, 250 / unit.utf8.count - 3)...(258 / unit.utf8.count + 2))
            return String(repeating: unit, count: count)
        case 5:
            // A random control or C1 character somewhere in a name.
            let c = Unicode.Scalar(UInt32(g.pick([g.int(0...0x1F), 0x7F, g.int(0x80...0x9F)])))!
            return "x" + String(Character(c)) + "y"
        case 6:
            // Any Unicode scalar (surrogates excluded: a String cannot hold them).
            var s = ""
            for _ in 0..<g.int(1...6) {
                var v = UInt32(g.int(0...0x10FFFF))
                if (0xD800...0xDFFF).contains(v) { v = 0xFFFD }
                s.unicodeScalars.append(Unicode.Scalar(v)!)
            }
            return s
        default:
            let letters = Array("abcxyz09 _-+.%#&=~'")
            return String((0..<g.int(1...12)).map { _ in g.pick(letters) })
        }
    }

    static func key(_ g: inout SeededRandom) -> String {
        if g.chance(0.02) { return "" }
        if g.chance(0.05) {
            // Totals right around the 4095-byte limit, every component valid.
            let target = g.int(4090...4100)
            var key = ""
            while key.utf8.count < target {
                if !key.isEmpty { key += "/" }
                let unit = g.chance(0.8) ? "a" : "é"
                let n = max(1, min(target - key.utf8.count, g.int(200...255)) / unit.utf8.count)
                key += String(repeating: unit, count: n)
            }
            return key + (g.chance(0.2) ? "/" : "")
        }
        var parts: [String] = []
        let n = g.chance(0.1) ? g.int(15...40) : g.int(1...6)
        for _ in 0..<n { parts.append(component(&g)) }
        if g.chance(0.05) {
            // Long but individually valid components: the 4095-byte total is what is tested.
            let wide = g.chance(0.5)
            parts = (0..<g.int(14...18)).map { _ in
                wide ? String(repeating: "é", count: g.int(120...127)) : String(repeating: "a", count: g.int(240...255))
            }
        }
        var key = parts.joined(separator: g.chance(0.1) ? "//" : "/")
        if g.chance(0.1) { key = String(repeating: "/", count: g.int(1...3)) + key }
        if g.chance(0.1) { key += String(repeating: "/", count: g.int(1...2)) }
        return key
    }
}

/// The documented rules, restated over UTF-8 bytes (independent of the scalar-based code).
private func expectedOutcome(_ key: String) -> Result<[String], PathError> {
    let bytes = Array(key.utf8)
    if bytes.isEmpty { return .failure(.empty) }
    if let bad = bytes.first(where: { $0 < 0x20 || $0 == 0x7F }) {
        return .failure(bad == 0 ? .nul(key: key) : .controlCharacter(key: key, scalar: UInt32(bad)))
    }
    if bytes[0] == UInt8(ascii: "/") { return .failure(.absolute(key: key)) }
    let marker = bytes.last == UInt8(ascii: "/")
    let body = marker ? Array(bytes.dropLast()) : bytes
    var parts: [[UInt8]] = [[]]
    for b in body {
        if b == UInt8(ascii: "/") { parts.append([]) } else { parts[parts.count - 1].append(b) }
    }
    for p in parts {
        let name = String(decoding: p, as: UTF8.self)
        if p.isEmpty { return .failure(.emptyComponent(key: key)) }
        if p == [0x2E] || p == [0x2E, 0x2E] { return .failure(.dotComponent(key: key, component: name)) }
        if p.count > 255 { return .failure(.componentTooLong(key: key, bytes: p.count)) }
    }
    if body.count > 4095 { return .failure(.pathTooLong(key: key, bytes: body.count)) }
    if marker { return .failure(.directoryMarker(key: key)) }
    return .success(parts.map { String(decoding: $0, as: UTF8.self) })
}

private func outcome(_ key: String) -> Result<SafePath, PathError> {
    do { return .success(try SafePath.fromKey(key)) } catch { return .failure(error) }
}

private let roots = ["/tmp/dest", "/tmp/dest/", "dest", "./dest", "/", ".", "a/b/..", "../up", "/x//y/./z", "d e/ü"]

final class SafePathFuzzTests: XCTestCase {
    /// One reproducer per failing property, not thousands of repeats (`continueAfterFailure`
    /// does not stop a loop in swift-corelibs-xctest).
    private var failed: Bool { (testRun?.totalFailureCount ?? 0) > 0 }

    func testHostileKeysMatchTheRulesAndAcceptedPathsStayInside() {
        let name = "hostileKeys"
        var accepted = 0, refused = 0
        for i in 0..<Fuzz.iterations(6000) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            let key = KeyGen.key(&g)
            let ctx = "key \(show(key)) \(Fuzz.context(name, i))"
            let got = outcome(key)
            switch (got, expectedOutcome(key)) {
            case (.failure(let e), .failure(let want)):
                refused += 1
                XCTAssertEqual(e, want, ctx)
                // One printable line, whatever the key held.
                let text = e.description
                XCTAssertFalse(text.unicodeScalars.contains { isUnsafeForTerminal($0) }, "message \(show(text)) \(ctx)")
            case (.success(let p), .success(let want)):
                accepted += 1
                XCTAssertEqual(p.components.map { Array($0.utf8) }, want.map { Array($0.utf8) }, ctx)
                checkSafe(p, key: key, ctx: ctx)
                let root = g.pick(roots)
                let full = p.resolved(under: root)
                XCTAssertTrue(SafePath.isContained(full, under: root), "\(show(full)) escapes \(root) \(ctx)")
                XCTAssertFalse(full.utf8.contains(0), ctx)
                // Deterministic: the same key always yields the same path (and hash).
                let again = try? SafePath.fromKey(key)
                XCTAssertEqual(again, p, ctx)
                XCTAssertEqual(again?.hashValue, p.hashValue, ctx)
                XCTAssertEqual(again?.relativePath.utf8.elementsEqual(p.relativePath.utf8), true, ctx)
            case (.success(let p), .failure(let want)):
                XCTFail("accepted as \(show(p.relativePath)) but the rules say \(want) \(ctx)")
            case (.failure(let e), .success):
                XCTFail("refused (\(e)) but the rules accept it \(ctx)")
            }
        }
        // The generator must exercise both sides, or the property says little.
        if failed { return }
        XCTAssertGreaterThan(accepted, Fuzz.iterations(6000) / 20, "seed 0x\(String(Fuzz.seed, radix: 16))")
        XCTAssertGreaterThan(refused, Fuzz.iterations(6000) / 5, "seed 0x\(String(Fuzz.seed, radix: 16))")
    }

    private func checkSafe(_ p: SafePath, key: String, ctx: String) {
        // Nothing is rewritten: the file is named exactly by the key.
        XCTAssertTrue(p.relativePath.utf8.elementsEqual(key.utf8), ctx)
        XCTAssertFalse(p.components.isEmpty, ctx)
        XCTAssertLessThanOrEqual(p.relativePath.utf8.count, SafePath.maxPathBytes, ctx)
        XCTAssertFalse(p.relativePath.hasPrefix("/"), ctx)
        for c in p.components {
            let b = Array(c.utf8)
            XCTAssertFalse(b.isEmpty, ctx)
            XCTAssertLessThanOrEqual(b.count, 255, ctx)
            XCTAssertFalse(b == [0x2E] || b == [0x2E, 0x2E], ctx)
            XCTAssertFalse(b.contains(UInt8(ascii: "/")), ctx)
            XCTAssertFalse(b.contains { $0 < 0x20 || $0 == 0x7F }, ctx)
        }
    }

    /// Components that only look like `.`/`..` (combining marks, lookalikes, spaces) are ordinary
    /// names, and joining real `.`/`..` anywhere in an otherwise fine key is always refused.
    func testDotComponentsAnywhereAreRefused() {
        let name = "dotAnywhere"
        for i in 0..<Fuzz.iterations(1500) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            var parts = (0..<g.int(1...5)).map { _ in "n\(g.int(0...99))" }
            let dot = g.pick([".", ".."])
            parts.insert(dot, at: g.int(0...parts.count))
            let key = parts.joined(separator: "/") + (g.chance(0.3) ? "/" : "")
            XCTAssertEqual(outcome(key).failureValue, .dotComponent(key: key, component: dot), "\(show(key)) \(Fuzz.context(name, i))")
        }
    }

    // MARK: printable

    func testPrintableIsOneSafeLineAndUnambiguous() {
        let name = "printable"
        let special: [UInt32] = [0, 9, 10, 13, 0x1B, 0x7F, 0x85, 0x9B, 0x2028, 0x2029, 0x200E, 0x200F, 0x202A,
                                 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x22, 0x5C,
                                 0x75, 0x7B, 0x7D, 0x2026, 0xFEFF, 0x10FFFF]
        for i in 0..<Fuzz.iterations(3000) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            var s = ""
            let n = g.chance(0.15) ? g.int(150...400) : g.int(0...40)
            for _ in 0..<n {
                var v: UInt32
                switch g.int(0...3) {
                case 0: v = g.pick(special)
                case 1: v = UInt32(g.int(0...0xFF))
                case 2: v = UInt32(g.int(0x20...0x7E))
                default: v = UInt32(g.int(0...0x10FFFF))
                }
                if (0xD800...0xDFFF).contains(v) { v = 0xFFFD }
                s.unicodeScalars.append(Unicode.Scalar(v)!)
            }
            let ctx = "input \(show(s)) \(Fuzz.context(name, i))"
            let out = PathError.printable(s)
            XCTAssertFalse(out.unicodeScalars.contains { isUnsafeForTerminal($0) }, "output \(show(out)) \(ctx)")
            let scalars = Array(s.unicodeScalars)
            if scalars.count <= PathError.maxPrintedScalars {
                XCTAssertEqual(unescape(out).map { Array($0.unicodeScalars) }, scalars, "output \(show(out)) \(ctx)")
            } else {
                let suffix = "…(\(s.utf8.count) bytes)"
                XCTAssertTrue(out.hasSuffix(suffix), "output \(show(out)) \(ctx)")
                let head = String(out.unicodeScalars.dropLast(suffix.unicodeScalars.count))
                XCTAssertEqual(unescape(head).map { Array($0.unicodeScalars) }, Array(scalars.prefix(PathError.maxPrintedScalars)),
                               "output \(show(out)) \(ctx)")
            }
            // And inside a full error message.
            let msg = PathError.controlCharacter(key: s, scalar: 1).description
            XCTAssertFalse(msg.unicodeScalars.contains { isUnsafeForTerminal($0) }, ctx)
        }
    }

    // MARK: isContained

    /// A root plus `/`-joined components: below the root when the depth never dips under zero and
    /// ends above it; not strictly below when it ends at or under zero. (A path that leaves the
    /// root and comes back by name is not judged.)
    func testContainmentAgreesWithADepthCount() {
        let name = "isContained"
        let pieces = ["..", ".", "", "a", "b", "...", "..\u{301}", "\\..", "ü", ".hidden", "d e"]
        let roots = ["/r", "/r/s/", "r", "./r", "r/s", "../r", "..", "/", "/r/./s//", "r/..", "/r/../s"]
        var checked = 0
        for i in 0..<Fuzz.iterations(6000) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            let root = g.pick(roots)
            let comps = (0..<g.int(0...7)).map { _ in g.pick(pieces) }
            var depth = 0, dipped = false
            for c in comps {
                if c == "" || c == "." { continue }
                if c == ".." { depth -= 1; if depth < 0 { dipped = true } } else { depth += 1 }
            }
            let path = root + "/" + comps.joined(separator: "/")
            let got = SafePath.isContained(path, under: root)
            let ctx = "path \(show(path)) under \(show(root)) \(Fuzz.context(name, i))"
            if depth <= 0 {
                // `/..` is `/`, so under "/" a dip is clamped rather than an escape.
                if !(root == "/" && dipped) { XCTAssertFalse(got, ctx); checked += 1 }
            } else if !dipped {
                XCTAssertTrue(got, ctx); checked += 1
            }
        }
        if !failed { XCTAssertGreaterThan(checked, Fuzz.iterations(6000) / 2) }
    }

    // MARK: PathConflicts

    func testConflictsKeepEveryPathOnceAndNoFileIsADirectory() throws {
        let name = "conflicts"
        let names = ["a", "b", "a b", "ä", "a\u{308}", "a0", "a.", "-"]
        for i in 0..<Fuzz.iterations(800) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            let paths = try (0..<g.int(0...25)).map { _ in
                try SafePath.fromKey((0..<g.int(1...4)).map { _ in g.pick(names) }.joined(separator: "/"))
            }
            let ctx = "\(paths.map(\.relativePath)) \(Fuzz.context(name, i))"
            let (files, conflicts) = PathConflicts.find(paths)
            // Every distinct path exactly once, as a file or a conflict, in input order.
            var seen = Set<SafePath>(), firsts: [SafePath] = []
            for p in paths where seen.insert(p).inserted { firsts.append(p) }
            let fileSet = Set(files), conflictSet = Set(conflicts)
            XCTAssertEqual(files.count, fileSet.count, ctx)
            XCTAssertEqual(conflicts.count, conflictSet.count, ctx)
            XCTAssertTrue(fileSet.isDisjoint(with: conflictSet), ctx)
            XCTAssertEqual(firsts.filter { fileSet.contains($0) }, files, ctx)
            XCTAssertEqual(firsts.filter { conflictSet.contains($0) }, conflicts, ctx)
            XCTAssertEqual(fileSet.union(conflictSet), seen, ctx)
            // A conflict is exactly a path that is a directory of some other path.
            for p in firsts {
                let isDir = firsts.contains { q in
                    q.components.count > p.components.count
                        && zip(p.components, q.components).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
                }
                XCTAssertEqual(conflictSet.contains(p), isDir, "\(p.relativePath) \(ctx)")
            }
        }
    }
}

private extension Result {
    var failureValue: Failure? { if case .failure(let e) = self { return e }; return nil }
}

/// Control characters (C0, DEL, C1), line/paragraph separators and bidi controls.
private func isUnsafeForTerminal(_ s: Unicode.Scalar) -> Bool {
    switch s.value {
    case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
    default: return false
    }
}

/// Inverse of `PathError.printable` for uncut output: `\"`, `\\` and `\u{HEX}`; nil if malformed.
private func unescape(_ s: String) -> String? {
    var out = String.UnicodeScalarView()
    var it = Array(s.unicodeScalars)[...]
    while let c = it.popFirst() {
        guard c == "\\" else {
            if c == "\"" { return nil }  // a bare quote would be ambiguous inside "…"
            out.append(c)
            continue
        }
        guard let n = it.popFirst() else { return nil }
        switch n {
        case "\"", "\\": out.append(n)
        case "u":
            guard it.popFirst() == "{", let close = it.firstIndex(of: "}") else { return nil }
            guard let v = UInt32(String(String.UnicodeScalarView(it[..<close])), radix: 16),
                  let sc = Unicode.Scalar(v) else { return nil }
            out.append(sc)
            it = it[it.index(after: close)...]
        default: return nil
        }
    }
    return String(out)
}
