import SoakCore

/// Why a cache directory could not be used.
public enum CacheError: Error, CustomStringConvertible, Sendable {
    case newerFormat(directory: String, found: Int32, supported: Int32)
    case notACache(directory: String, reason: String)
    /// A command that needs an existing cache found none there.
    case noCache(directory: String)
    case unusableDirectory(LocalIOError)
    case index(SQLiteError)
    case invalidSize(String)

    public var description: String {
        switch self {
        case .newerFormat(let d, let f, let s):
            return "cache \(d) has format version \(f), newer than this soak understands (\(s)); "
                + "use a newer soak or another --cache-dir"
        case .notACache(let d, let why):
            return "\(d) is not a soak cache (\(why)); soak uses only a directory it made, an empty one, "
                + "or a missing one: use another --cache-dir"
        case .noCache(let d): return "no soak cache at \(d) (missing or empty); nothing to do"
        case .unusableDirectory(let e): return "cache directory unusable: \(e)"
        case .index(let e): return "cache index: \(e)"
        case .invalidSize(let s): return s
        }
    }
}
