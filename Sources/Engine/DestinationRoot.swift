/// A download's destination directory, held open: every path under it is resolved from this
/// descriptor, so nothing soak opens, creates, links, renames or removes lies outside it.
///
/// Decisions. Paths are relative (from `SafePath`: no `..`, no leading `/`, no empty component).
/// They are resolved with `openat2(RESOLVE_BENEATH)`: a symbolic link among the directories is
/// followed only while it stays under DEST (an absolute link, or one that climbs out with `..`,
/// fails with EXDEV). The last component is never followed (O_NOFOLLOW; publishing checks the
/// final name with AT_SYMLINK_NOFOLLOW before a rename): soak neither writes through nor replaces
/// a symbolic link it did not create. Such a key fails with one line (`SymlinkRefused`).
/// On kernels without openat2 (before 5.6: ENOSYS; some seccomp filters answer EPERM) each
/// component is opened with O_NOFOLLOW from the one before: stricter, no link is followed at all.
/// DEST itself may be reached through links: it is the user's choice.
import CSys
import Foundation
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

/// A key whose path in DEST is, or goes through, a symbolic link soak may not follow or replace.
public struct SymlinkRefused: Error, Sendable, CustomStringConvertible {
    public let path: String
    public var errno: Int32 { ELOOP }
    public init(path: String) { self.path = path }
    public var description: String {
        "\(PathError.printable(path)): is or goes through a symbolic link (soak does not follow one out of the "
            + "destination, write through it or replace it)"
    }
}

public final class DestinationRoot: Sendable {
    /// DEST as given, for messages.
    public let path: String
    /// DEST, opened O_PATH.
    public let fd: Int32
    /// Resolve with openat2 (else the component walk).
    let beneath: Bool

    /// Whether this kernel has openat2 (probed once).
    static let kernelHasOpenat2: Bool = {
        let fd = csys_openat2(AT_FDCWD, "/", csys_o_path() | O_CLOEXEC, 0, UInt64(CSYS_RESOLVE_BENEATH))
        if fd >= 0 { close(fd); return true }
        return errno != ENOSYS && errno != EPERM
    }()

    /// Opens `path`, which must be a directory. `useOpenat2: false` forces the component walk (tests).
    public init(path: String, useOpenat2: Bool? = nil) throws {
        let fd = Glibc.open(path, csys_o_path() | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw LocalIOError(errno: errno, operation: "open destination", path: path) }
        self.path = path
        self.fd = fd
        self.beneath = useOpenat2 ?? Self.kernelHasOpenat2
    }

    deinit { close(fd) }

    /// `rel` as a path for messages.
    public func display(_ rel: String) -> String { rel.isEmpty || rel == "." ? path : path + "/" + rel }

    /// Opens `rel` beneath DEST with `flags` (O_NOFOLLOW and O_CLOEXEC added). A symbolic link
    /// on the way out of DEST, or as the last component, throws `SymlinkRefused`.
    public func open(_ rel: String, _ flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        try resolve(rel, flags | O_NOFOLLOW, mode: mode)
    }

    /// Opens directory `rel` ("" or "." for DEST itself) beneath DEST, O_PATH: usable as the
    /// directory of `*at` calls. Like the directories on the way, it may be a link that stays
    /// under DEST (with openat2).
    public func openDirectory(_ rel: String) throws -> Int32 {
        try resolve(rel.isEmpty ? "." : rel, csys_o_path() | O_DIRECTORY, mode: 0)
    }

    private func resolve(_ rel: String, _ flags: Int32, mode: mode_t) throws -> Int32 {
        let all = flags | O_CLOEXEC
        if beneath {
            // openat2 refuses (EINVAL) a mode with flags that create nothing.
            let creates = all & O_CREAT != 0 || all & csys_o_tmpfile() == csys_o_tmpfile()
            let r = csys_openat2(fd, rel, all, creates ? Int32(mode) : 0,
                                 UInt64(CSYS_RESOLVE_BENEATH | CSYS_RESOLVE_NO_MAGICLINKS))
            if r >= 0 { return r }
            throw error(errno, rel)
        }
        let (dir, name) = try walk(rel)
        defer { if dir != fd { close(dir) } }
        let r = openat(dir, name, all | O_NOFOLLOW, mode)
        if r >= 0 { return r }
        let e = errno
        if Self.kind(in: dir, name) == S_IFLNK { throw SymlinkRefused(path: display(rel)) }
        throw error(e, rel)
    }

    /// `mkdir -p` of `rel` beneath DEST.
    public func makeDirectories(_ rel: String) throws {
        if rel.isEmpty || rel == "." { return }
        do {
            close(try openDirectory(rel))
            return
        } catch let e as LocalIOError where e.errno == ENOENT {}
        let parent = parentDirectory(of: rel)
        try makeDirectories(parent)
        let pfd = try openDirectory(parent)
        defer { close(pfd) }
        let name = String(rel.split(separator: "/").last ?? "")
        if mkdirat(pfd, name, 0o755) != 0 && errno != EEXIST {
            throw LocalIOError(errno: errno, operation: "mkdir", path: display(rel))
        }
        close(try openDirectory(rel))  // what is there now is a directory, not a link
    }

    /// The type bits (S_IFMT) of entry `name` of directory `dir`, not following a link; nil if absent.
    public static func kind(in dir: Int32, _ name: String) -> mode_t? {
        var st = stat()
        guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
        return st.st_mode & S_IFMT
    }

    /// Fails unless entry `name` of `dir` is absent or something a rename may replace (not a
    /// link, not a directory).
    public func checkReplaceable(in dir: Int32, _ name: String, rel: String) throws {
        switch Self.kind(in: dir, name) {
        case S_IFLNK: throw SymlinkRefused(path: display(rel))
        case S_IFDIR: throw LocalIOError(errno: EISDIR, operation: "replace", path: display(rel))
        default: return
        }
    }

    /// Without openat2: the directory holding `rel`'s last component, reached one component at
    /// a time without following any link, and that component's name.
    private func walk(_ rel: String) throws -> (Int32, String) {
        var comps = rel.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let last = comps.popLast() ?? "."
        var dir = fd
        for (i, c) in comps.enumerated() {
            let next = openat(dir, c, csys_o_path() | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let e = errno
            let wasLink = next < 0 && Self.kind(in: dir, c) == S_IFLNK
            if dir != fd { close(dir) }
            guard next >= 0 else {
                let sub = comps[0...i].joined(separator: "/")
                throw wasLink || c == ".." ? SymlinkRefused(path: display(sub)) as Error
                    : LocalIOError(errno: e, operation: "open", path: display(sub))
            }
            dir = next
        }
        return (dir, last)
    }

    /// The error for a failed open of `rel`: EXDEV (openat2 refused to leave DEST) and ELOOP
    /// (O_NOFOLLOW met a link) are `SymlinkRefused`.
    private func error(_ e: Int32, _ rel: String) -> Error {
        if e == EXDEV || e == ELOOP { return SymlinkRefused(path: display(rel)) }
        return LocalIOError(errno: e, operation: "open", path: display(rel))
    }
}
