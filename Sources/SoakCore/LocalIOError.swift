#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed local write or open, with its errno.
public struct LocalIOError: Error, Sendable, CustomStringConvertible {
    public let errno: Int32
    public let operation: String
    public let path: String
    public init(errno: Int32, operation: String, path: String) {
        self.errno = errno; self.operation = operation; self.path = path
    }
    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}
