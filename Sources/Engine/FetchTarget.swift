import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An order's opened file (`FetchTargets.open`): `fd` (-1 with `errno` when the open failed) and whether it is O_DIRECT.
public struct FetchTarget: Equatable, Sendable {
    public var fd: Int32
    public var direct: Bool
    public var errno: Int32 = 0
    /// Why the open failed, when there is more to say than `errno`.
    public var failure: String?
    /// Publish orders: the final directory (O_PATH) the file is linked or renamed into.
    public var parent: Int32 = -1
    /// Publish orders on a filesystem without O_TMPFILE: the named temporary file, as its
    /// directory (O_PATH) and name; renamed into place when complete, removed otherwise.
    public var tempDirectory: Int32 = -1
    public var tempName: String?

    public init(fd: Int32, direct: Bool, errno: Int32 = 0, failure: String? = nil) {
        self.fd = fd; self.direct = direct; self.errno = errno; self.failure = failure
    }

    /// Closes the directories; removes the named temporary file unless it was `published`.
    public func releaseDirectories(published: Bool) {
        if let n = tempName, tempDirectory >= 0, !published { unlinkat(tempDirectory, n, 0) }
        if tempDirectory >= 0 { close(tempDirectory) }
        if parent >= 0 { close(parent) }
    }

    /// An unused target: closes everything and removes a named temporary file.
    public func release() {
        if fd >= 0 { close(fd) }
        releaseDirectories(published: false)
    }
}
