/// Turning an S3 key (relative to the listing prefix) into a relative filesystem path that cannot
/// escape the download directory.
///
/// How it works: the key is checked as bytes and Unicode scalars, never as Swift Characters
/// (a combining mark after `/` would otherwise hide the separator inside one Character).
/// `fromKey` refuses, in this order: an empty key; NUL; other control characters (U+0001–U+001F,
/// U+007F); a leading `/`. Then one trailing `/` is set aside and the rest is split on every `/`;
/// each component must be non-empty, not `.` or `..`, and at most 255 bytes; the whole path at
/// most 4095 bytes. A key that passed all that but ended in `/` is a directory marker
/// (`.directoryMarker`): callers skip it, it is not a failure. Anything else is allowed, including
/// spaces, `+ % ? # & = ~ '`, backslashes and any non-control Unicode.
///
/// Equality and hashing are byte-exact (Linux filesystems compare bytes), unlike `String ==`,
/// which would merge NFC and NFD spellings of the same name into one path.
///
/// `PathConflicts.find` resolves keys that are both a file and a directory (`a` and `a/b`): the
/// deeper keys win and the file is reported. It sorts component-wise, where every path that has
/// `p` as a strict prefix sorts right after `p`, so one comparison with the next distinct path
/// decides; O(n log n), no quadratic prefix enumeration.
public struct SafePath: Sendable, Hashable, CustomStringConvertible {
    /// NAME_MAX on ext4/xfs/btrfs: a longer component fails with ENAMETOOLONG.
    public static let maxComponentBytes = 255
    /// PATH_MAX (4096) minus the terminating NUL.
    public static let maxPathBytes = 4095

    /// The validated path components: non-empty, not `.`/`..`, no `/`, NUL or control characters.
    public let components: [String]

    /// Components joined with `/`; never starts or ends with `/`.
    public var relativePath: String { components.joined(separator: "/") }

    public var description: String { relativePath }

    private init(validated components: [String]) { self.components = components }

    /// Validates `relativeKey` (the key with the listing prefix removed).
    public static func fromKey(_ relativeKey: String) throws(PathError) -> SafePath {
        let scalars = relativeKey.unicodeScalars
        guard !scalars.isEmpty else { throw .empty }
        for s in scalars {
            if s.value == 0 { throw .nul(key: relativeKey) }
            if s.value < 0x20 || s.value == 0x7F { throw .controlCharacter(key: relativeKey, scalar: s.value) }
        }
        if scalars.first == "/" { throw .absolute(key: relativeKey) }

        let isMarker = scalars.last == "/"
        let body = isMarker ? scalars.dropLast() : scalars[...]

        var components: [String] = []
        for part in body.split(separator: "/", omittingEmptySubsequences: false) {
            let name = String(Substring(part))
            let bytes = name.utf8
            if bytes.isEmpty { throw .emptyComponent(key: relativeKey) }
            if bytes.elementsEqual(".".utf8) || bytes.elementsEqual("..".utf8) {
                throw .dotComponent(key: relativeKey, component: name)
            }
            if bytes.count > maxComponentBytes {
                throw .componentTooLong(key: relativeKey, bytes: bytes.count)
            }
            components.append(name)
        }
        let total = components.reduce(components.count - 1) { $0 + $1.utf8.count }
        if total > maxPathBytes { throw .pathTooLong(key: relativeKey, bytes: total) }
        if isMarker { throw .directoryMarker(key: relativeKey) }
        return SafePath(validated: components)
    }

    /// `root` joined with this path (one `/` between them; `root` "" means the current directory).
    public func resolved(under root: String) -> String {
        var r = Substring(root)
        while r.utf8.count > 1, r.utf8.last == UInt8(ascii: "/") { r = r.dropLast() }
        if r.isEmpty { return relativePath }
        if r == "/" { return "/" + relativePath }
        return r + "/" + relativePath
    }

    /// Whether `path` lies strictly below `root` once both are normalized lexically (`//` and `.`
    /// dropped, `..` applied). Symlinks are NOT resolved: this proves a joined string did not
    /// climb out, not that the filesystem will agree if `root` contains hostile symlinks.
    public static func isContained(_ path: String, under root: String) -> Bool {
        guard let p = lexicalComponents(path), let r = lexicalComponents(root),
              p.absolute == r.absolute, p.parts.count > r.parts.count else { return false }
        // After normalization `..` survives only as a leading part of a relative path; one left
        // after the root's parts climbs above the root ("../a" is not under ".").
        return zip(p.parts, r.parts).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
            && !p.parts[r.parts.count...].contains { $0.utf8.elementsEqual("..".utf8) }
    }

    /// Lexical normalization; nil for an empty string. A relative path may keep leading `..`.
    private static func lexicalComponents(_ path: String) -> (absolute: Bool, parts: [String])? {
        let scalars = path.unicodeScalars
        guard !scalars.isEmpty else { return nil }
        let absolute = scalars.first == "/"
        var parts: [String] = []
        for piece in scalars.split(separator: "/", omittingEmptySubsequences: true) {
            let name = String(Substring(piece))
            if name.utf8.elementsEqual(".".utf8) { continue }
            if name.utf8.elementsEqual("..".utf8) {
                if let last = parts.last, !last.utf8.elementsEqual("..".utf8) { parts.removeLast() }
                else if !absolute { parts.append(name) }   // `/..` is `/`
                continue
            }
            parts.append(name)
        }
        return (absolute, parts)
    }

    public static func == (a: SafePath, b: SafePath) -> Bool {
        a.components.count == b.components.count
            && zip(a.components, b.components).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
    }

    public func hash(into hasher: inout Hasher) {
        for c in components {
            for byte in c.utf8 { hasher.combine(byte) }
            hasher.combine(UInt8(0xFF))  // never occurs in UTF-8: separates components
        }
    }

    /// Byte-wise, component-wise order: `a` < `a/b` < `a/c` < `a0`... every extension of a path
    /// sorts directly after it.
    static func componentOrder(_ a: SafePath, _ b: SafePath) -> Bool {
        for (x, y) in zip(a.components, b.components) where !x.utf8.elementsEqual(y.utf8) {
            return x.utf8.lexicographicallyPrecedes(y.utf8)
        }
        return a.components.count < b.components.count
    }

    /// Whether `self` is a strict, component-wise prefix of `other` (i.e. a directory of it).
    func isStrictPrefix(of other: SafePath) -> Bool {
        components.count < other.components.count
            && zip(components, other.components).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
    }
}

/// Why a key cannot become a local path. Every message names the key, escaped for printing.
public enum PathError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case nul(key: String)
    case controlCharacter(key: String, scalar: UInt32)
    case absolute(key: String)
    case dotComponent(key: String, component: String)
    case emptyComponent(key: String)
    case componentTooLong(key: String, bytes: Int)
    case pathTooLong(key: String, bytes: Int)
    /// The key ends in `/`: a "folder" placeholder object, not a file. Skip it; not a failure.
    case directoryMarker(key: String)

    /// Printed keys longer than this many scalars are cut (a 4 KB key drowns the message).
    public static let maxPrintedScalars = 160

    /// The offending key ("" for `.empty`).
    public var key: String {
        switch self {
        case .empty: return ""
        case .nul(let k), .controlCharacter(let k, _), .absolute(let k), .dotComponent(let k, _),
             .emptyComponent(let k), .componentTooLong(let k, _), .pathTooLong(let k, _),
             .directoryMarker(let k):
            return k
        }
    }

    /// True for errors callers should skip silently rather than report (directory markers).
    public var isSkippable: Bool {
        if case .directoryMarker = self { return true }
        return false
    }

    public var description: String {
        let k = "key \"\(PathError.printable(key))\""
        switch self {
        case .empty:
            return "refusing an empty key: it names no file under the destination"
        case .nul:
            return "refusing \(k): it contains a NUL byte, which no filesystem path can hold"
        case .controlCharacter(_, let v):
            return "refusing \(k): it contains control character U+\(hex4(v)), unsafe in file names"
        case .absolute:
            return "refusing \(k): it starts with '/', which would write outside the destination"
        case .dotComponent(_, let c):
            return "refusing \(k): it has a '\(c)' component, which could escape the destination"
        case .emptyComponent:
            return "refusing \(k): it has an empty component ('//'), which has no local name"
        case .componentTooLong(_, let n):
            return "refusing \(k): one component is \(n) bytes, over the \(SafePath.maxComponentBytes)-byte file name limit"
        case .pathTooLong(_, let n):
            return "refusing \(k): it is \(n) bytes, over the \(SafePath.maxPathBytes)-byte path limit"
        case .directoryMarker:
            return "skipping \(k): it ends in '/', a directory marker with no file content"
        }
    }

    /// `s` safe to print on one terminal line: control characters, `"`/`\`, line and paragraph
    /// separators and bidirectional overrides become `\u{…}` escapes; long strings are cut.
    public static func printable(_ s: String) -> String {
        var out = ""
        var n = 0
        for sc in s.unicodeScalars {
            if n == maxPrintedScalars {
                out += "…(\(s.utf8.count) bytes)"
                break
            }
            n += 1
            let v = sc.value
            switch v {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069:
                out += "\\u{\(String(v, radix: 16, uppercase: true))}"
            default: out.unicodeScalars.append(sc)
            }
        }
        return out
    }
}

private func hex4(_ v: UInt32) -> String {
    let h = String(v, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - h.count)) + h
}

/// Keys that are both a file and a directory prefix (`a` and `a/b`) cannot both be written.
/// Deterministic rule: the deeper keys (the directory's contents) win; the file is a conflict.
public enum PathConflicts {
    /// Splits `paths` into those to write and the conflicting files to skip and report. Both lists
    /// keep input order; exact duplicates collapse to their first occurrence.
    public static func find(_ paths: [SafePath]) -> (files: [SafePath], conflicts: [SafePath]) {
        let order = paths.indices.sorted { a, b in
            if paths[a] == paths[b] { return a < b }
            return SafePath.componentOrder(paths[a], paths[b])
        }
        var keep = [Bool](repeating: false, count: paths.count)
        var conflict = [Bool](repeating: false, count: paths.count)
        var i = 0
        while i < order.count {
            // The run of duplicates of paths[order[i]]; the first (lowest index) represents it.
            var j = i + 1
            while j < order.count, paths[order[j]] == paths[order[i]] { j += 1 }
            let isDirectory = j < order.count && paths[order[i]].isStrictPrefix(of: paths[order[j]])
            if isDirectory { conflict[order[i]] = true } else { keep[order[i]] = true }
            i = j
        }
        var files: [SafePath] = [], conflicts: [SafePath] = []
        for (idx, p) in paths.enumerated() {
            if keep[idx] { files.append(p) } else if conflict[idx] { conflicts.append(p) }
        }
        return (files, conflicts)
    }
}
