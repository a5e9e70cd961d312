/// Why a file-system request failed, with the errno the kernel gets: modelled on mountpoint-s3's
/// `fs/error.rs`. Handlers build one from a namespace condition (`notFound`, `isDirectory`…) or
/// from a typed error (`init(_:)`); `errno` is derived from its kind in one place, and only the
/// bridge turns it into a reply.
import Cache
import Engine
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

public struct FSError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// No such name or inode, or the key is gone from the bucket.
        case notFound
        case notADirectory
        case isADirectory
        /// A write, a truncate or an append on the read-only mount.
        case readOnly
        /// The object changed since this inode showed it: the kernel looks the name up again.
        case stale
        /// A file or directory handle the mount never gave out (or already released).
        case badHandle
        /// The bucket refused the request (403).
        case accessDenied
        /// Anything else: the bucket cannot be reached, the cache failed, no data in time.
        case io
    }

    public let kind: Kind
    /// What went wrong, for the log.
    public let message: String

    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }

    /// The one place a failure becomes an errno.
    public var errno: Int32 {
        switch kind {
        case .notFound: return ENOENT
        case .notADirectory: return ENOTDIR
        case .isADirectory: return EISDIR
        case .readOnly: return EROFS
        case .stale: return ESTALE
        case .badHandle: return EBADF
        case .accessDenied: return EACCES
        case .io: return EIO
        }
    }

    public var description: String { message }

    // MARK: - Namespace conditions

    static func notFound(_ what: String) -> FSError { FSError(.notFound, "\(what): not found") }
    static func notADirectory(_ what: String) -> FSError { FSError(.notADirectory, "\(what): not a directory") }
    static func isADirectory(_ what: String) -> FSError { FSError(.isADirectory, "\(what): is a directory") }
    static func readOnly(_ what: String) -> FSError { FSError(.readOnly, "\(what): the mount is read-only") }
    static func stale(_ what: String) -> FSError { FSError(.stale, "\(what): changed in the bucket") }
    static func badHandle(_ fh: UInt64) -> FSError { FSError(.badHandle, "no open handle \(fh)") }

    // MARK: - Typed errors

    /// A typed error from below the mount (fill, S3, local I/O, cache), classified.
    public init(_ error: Error) {
        switch error {
        case let e as FSError: self = e
        case let e as FillError: self.init(fill: e)
        case let e as S3Error: self.init(Self.kind(of: e), e.description)
        case let e as LocalIOError: self.init(.io, e.description)
        case let e as CacheError: self.init(.io, e.description)
        default: self.init(.io, "\(error)")
        }
    }

    private init(fill e: FillError) {
        switch e {
        // The version this inode shows is gone: the kernel looks the name up again.
        case .changed, .replaced: self.init(.stale, e.description)
        case .deleted: self.init(.notFound, e.description)
        case .fetch(let s3): self.init(Self.kind(of: s3), e.description)
        case .evicted, .local: self.init(.io, e.description)
        }
    }

    private static func kind(of e: S3Error) -> Kind {
        switch e.status {
        case 403: return .accessDenied
        case 404: return .notFound
        case 412: return .stale
        default: return .io
        }
    }

    /// A listing that failed with nothing cached to show: a missing bucket or prefix is not
    /// "no such file" for the directory being listed, so only 403 keeps its meaning.
    static func listing(_ error: Error) -> FSError {
        let e = FSError(error)
        return e.kind == .accessDenied ? e : FSError(.io, e.message)
    }
}
