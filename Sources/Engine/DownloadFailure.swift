import SoakCore

/// A key that did not land, and why in one line: `soak download` and `soak prewarm` report these alike.
public struct DownloadFailure: Sendable, Codable, CustomStringConvertible {
    public var key: String
    public var reason: String
    /// One line whatever the key holds (newlines, control characters, very long keys).
    public var description: String { "\(PathError.printable(key)): \(reason)" }

    public init(key: String, reason: String) {
        self.key = key; self.reason = reason
    }
}
