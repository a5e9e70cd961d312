/// `--cache-size`: a byte count (`500M`, `20GiB`, `1.5T`, `1000000`) or a share of the cache's
/// file system (`50%`). Suffixes K M G T are powers of 1024 with or without `i`/`B`; `KB`, `MB`,
/// `GB`, `TB` are powers of 1000.
public enum CacheCapacity: Sendable, Equatable, CustomStringConvertible {
    case unlimited
    case bytes(Int64)
    case percent(Double)

    public init(parsing raw: String) throws(CacheError) {
        let s = raw.trimmingASCIIWhitespace()
        let bad = CacheError.invalidSize("invalid --cache-size '\(raw)': expected bytes like 500M, 20GiB or 1000000, or a share like 50%")
        if s.hasSuffix("%") {
            guard let p = Double(s.dropLast()), p > 0, p <= 100 else { throw bad }
            self = .percent(p)
            return
        }
        var num = Substring(s)
        var mult = 1.0
        let units: [(String, Double)] = [
            ("KIB", 0x1p10), ("MIB", 0x1p20), ("GIB", 0x1p30), ("TIB", 0x1p40),
            ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12),
            ("K", 0x1p10), ("M", 0x1p20), ("G", 0x1p30), ("T", 0x1p40), ("B", 1),
        ]
        let upper = s.uppercased()
        for (u, m) in units where upper.hasSuffix(u) {
            num = num.dropLast(u.count)
            mult = m
            break
        }
        guard let v = Double(String(num).trimmingASCIIWhitespace()), v.isFinite, v > 0, v * mult < 9e18 else { throw bad }
        self = .bytes(Int64(v * mult))
    }

    /// The cap for a file system of `filesystemBytes`, or nil for no cap.
    public func bytes(filesystemBytes: Int64) -> Int64? {
        switch self {
        case .unlimited: return nil
        case .bytes(let b): return b
        case .percent(let p): return Int64(Double(filesystemBytes) * p / 100)
        }
    }

    public var description: String {
        switch self {
        case .unlimited: return "unlimited"
        case .bytes(let b): return "\(b) bytes"
        case .percent(let p): return "\(p)% of the file system"
        }
    }
}
