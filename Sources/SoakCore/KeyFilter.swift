/// Include/exclude key filtering with `aws s3 sync` semantics.
///
/// How it works: every key starts out included. Rules apply in command-line order and the last
/// rule whose pattern matches decides, so `--exclude "*" --include "*.txt"` keeps only `.txt`
/// keys. That is evaluated back to front: the first matching rule from the end wins; a key no
/// rule matches stays included.
///
/// Patterns are Python `fnmatch` globs (what the AWS CLI uses), matched against the whole key
/// relative to the listing prefix (prefix `data/`, key `data/a/b.csv` → `a/b.csv`):
/// `*` matches any run of characters INCLUDING `/`; `?` exactly one character; `[seq]` one
/// character in the set and `[!seq]` one not in it, with ranges `a-z`. As in fnmatch: a `]`
/// right after `[` or `[!` is a member, `-` first or last is literal, a reversed range such as
/// `z-a` matches nothing, `^` is not negation, an unclosed `[` is a literal `[`, there is no
/// escape character (`\` is literal), and matching is case-sensitive (POSIX).
///
/// Characters are Unicode scalars (Python compares code points), so `?` matches one code point
/// and a decomposed `é` (`e` + U+0301) is two. Keys are compared scalar by scalar, never with
/// Swift's canonical-equivalence `==`: S3 keys are byte strings.
///
/// Matching is the classic iterative wildcard algorithm. Every `*` matches anything, so on a
/// mismatch only the most recent `*` needs to take one more character; earlier stars never need
/// revisiting. A match therefore costs at most O(pattern × key) steps: `*a*a*a*a*b` against a
/// long run of `a`s is quadratic at worst, never exponential, and there is no recursion.
public enum FilterRule: Sendable, Equatable, Codable {
    case include(String)
    case exclude(String)

    /// The glob pattern of the rule.
    public var pattern: String {
        switch self {
        case .include(let p), .exclude(let p): return p
        }
    }
}

public struct KeyFilter: Sendable {
    /// The rules in command-line order.
    public let rules: [FilterRule]
    /// Compiled patterns, same order as `rules`, paired with "is include".
    private let compiled: [(pattern: Pattern, include: Bool)]

    public init(_ rules: [FilterRule]) {
        self.rules = rules
        self.compiled = rules.map { rule in
            switch rule {
            case .include(let p): return (Pattern(p), true)
            case .exclude(let p): return (Pattern(p), false)
            }
        }
    }

    /// True when no rule can exclude anything (no rules, or only includes).
    public var includesEverything: Bool { compiled.allSatisfy(\.include) }

    /// Whether `relativeKey` (the key with the listing prefix removed) is selected.
    public func includes(_ relativeKey: String) -> Bool {
        if includesEverything { return true }
        let scalars = Array(relativeKey.unicodeScalars)
        for rule in compiled.reversed() where rule.pattern.matches(scalars: scalars) {
            return rule.include
        }
        return true
    }

    /// `key` with `prefix` removed, compared byte for byte; nil when `key` does not start with
    /// `prefix`. Use this rather than `key.dropFirst(prefix.count)`: `count` is in grapheme
    /// clusters, and a combining mark after the prefix's `/` joins it into one Character.
    public static func relativeKey(_ key: String, prefix: String) -> String? {
        let k = key.utf8, p = prefix.utf8
        guard k.starts(with: p) else { return nil }
        return String(decoding: k.dropFirst(p.count), as: UTF8.self)
    }

    /// One compiled fnmatch pattern.
    public struct Pattern: Sendable, CustomStringConvertible {
        /// The pattern as written.
        public let source: String
        private let tokens: [Token]

        public init(_ source: String) {
            self.source = source
            self.tokens = Pattern.compile(Array(source.unicodeScalars))
        }

        public var description: String { source }

        /// Whether the whole of `string` matches the pattern.
        public func matches(_ string: String) -> Bool {
            matches(scalars: Array(string.unicodeScalars))
        }

        /// Iterative match with single-star backtracking (see the file comment for why it is enough).
        func matches(scalars s: [Unicode.Scalar]) -> Bool {
            var p = 0, k = 0
            var starP = -1   // token index of the most recent `*`, -1 if none yet
            var starK = 0    // key index that star currently extends to
            while k < s.count {
                if p < tokens.count {
                    switch tokens[p] {
                    case .star:
                        starP = p; starK = k; p += 1
                        continue
                    case .any:
                        p += 1; k += 1
                        continue
                    case .scalar(let c) where c == s[k]:
                        p += 1; k += 1
                        continue
                    case .set(let set) where set.contains(s[k]):
                        p += 1; k += 1
                        continue
                    default:
                        break
                    }
                }
                // Mismatch (or pattern exhausted): let the last star swallow one more character.
                guard starP >= 0 else { return false }
                starK += 1
                k = starK
                p = starP + 1
            }
            while p < tokens.count, case .star = tokens[p] { p += 1 }
            return p == tokens.count
        }

        enum Token: Sendable {
            case scalar(Unicode.Scalar)
            case any
            case star
            case set(CharSet)
        }

        struct CharSet: Sendable {
            var negated: Bool
            /// Inclusive scalar-value ranges; a single member is `(c, c)`; `lo > hi` is empty.
            var ranges: [(lo: UInt32, hi: UInt32)]

            func contains(_ c: Unicode.Scalar) -> Bool {
                let v = c.value
                let hit = ranges.contains { $0.lo <= v && v <= $0.hi }
                return hit != negated
            }
        }

        /// Translates the pattern the way Python's `fnmatch.translate` does.
        static func compile(_ pat: [Unicode.Scalar]) -> [Token] {
            var out: [Token] = []
            var i = 0
            while i < pat.count {
                let c = pat[i]
                i += 1
                switch c {
                case "*":
                    if case .star? = out.last { continue }  // `**` is `*`
                    out.append(.star)
                case "?":
                    out.append(.any)
                case "[":
                    // Find the closing `]`: a `]` right after `[` or `[!` is a member.
                    var j = i
                    if j < pat.count, pat[j] == "!" { j += 1 }
                    if j < pat.count, pat[j] == "]" { j += 1 }
                    while j < pat.count, pat[j] != "]" { j += 1 }
                    guard j < pat.count else {
                        out.append(.scalar("["))  // unclosed: literal `[`, rescan what follows
                        continue
                    }
                    var body = Array(pat[i..<j])
                    i = j + 1
                    var negated = false
                    if body.first == "!" { negated = true; body.removeFirst() }
                    var ranges: [(lo: UInt32, hi: UInt32)] = []
                    var b = 0
                    while b < body.count {
                        // `x-y` is a range unless the `-` is the last member (then literal).
                        if b + 2 < body.count, body[b + 1] == "-" {
                            ranges.append((body[b].value, body[b + 2].value))
                            b += 3
                        } else {
                            ranges.append((body[b].value, body[b].value))
                            b += 1
                        }
                    }
                    out.append(.set(CharSet(negated: negated, ranges: ranges)))
                default:
                    out.append(.scalar(c))
                }
            }
            return out
        }
    }
}
