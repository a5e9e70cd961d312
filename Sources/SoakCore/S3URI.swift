/// `s3://BUCKET/PREFIX` parsing. The prefix is treated as a directory (like `aws s3 sync`):
/// a non-empty prefix without a trailing `/` gets one.
public struct S3URI: Sendable, Equatable, CustomStringConvertible {
    public var bucket: String
    public var prefix: String

    public init(bucket: String, prefix: String) { self.bucket = bucket; self.prefix = prefix }

    public init(parsing s: String) throws(UsageError) {
        guard s.hasPrefix("s3://") else {
            throw UsageError("'\(s)' is not an S3 URI: expected s3://BUCKET/PREFIX")
        }
        let rest = s.dropFirst(5)
        let slash = rest.firstIndex(of: "/")
        let bucket = String(slash.map { rest[..<$0] } ?? rest)
        guard !bucket.isEmpty else { throw UsageError("'\(s)' has no bucket name: expected s3://BUCKET/PREFIX") }
        guard bucket.count <= 255, bucket.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "?" && $0 != "#" }) else {
            throw UsageError("'\(s)' has an invalid bucket name '\(bucket)'")
        }
        var prefix = slash.map { String(rest[rest.index(after: $0)...]) } ?? ""
        guard !prefix.utf8.contains(0) else { throw UsageError("the prefix of '\(s)' contains a NUL byte") }
        if !prefix.isEmpty && !prefix.hasSuffix("/") { prefix += "/" }
        self.bucket = bucket
        self.prefix = prefix
    }

    public var description: String { "s3://\(bucket)/\(prefix)" }
}

/// Bad input from the command line or environment: reported as one line, exit status 2.
public struct UsageError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
