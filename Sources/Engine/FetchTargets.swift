/// Where an order's bytes go: opening its target, and publishing a complete download under its
/// name. Shared by every `FetchTransport` (the worker process and `StoreTransport`), so what
/// lands on disk and under which name cannot differ between them.
///
/// Download orders carry their destination (`FetchOrder.root`); every path is resolved beneath
/// it (`DestinationRoot`), so a symbolic link in DEST is never followed out of it, written
/// through or replaced. A whole object is written into an unnamed file (O_TMPFILE) in its final
/// directory and linked in when complete. Filesystems without O_TMPFILE (NFS, CIFS, vfat, many
/// FUSE filesystems) get a named temporary file in `DEST/.soak-partial/` instead, renamed into
/// place when complete and removed when the order ends otherwise; which filesystems those are is
/// learnt at the first open on each (`st_dev`) and remembered for the worker's life.
import CSys
import Foundation
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public enum FetchTargets {
    /// Opens `o`'s target (O_DIRECT when asked and possible) and preallocates its range; inline
    /// or on the `FilePreparer`'s thread. A failure is a target with `fd` -1 (see `FetchRegion`).
    public static func open(_ o: FetchOrder) -> FetchTarget {
        let wantDirect = o.direct && o.fileOffset % Int64(WorkerLoop.directAlignment) == 0
        var target: FetchTarget
        do {
            if let rootPath = o.root {
                let root = try WorkerDestinations.root(rootPath)
                if let p = o.publish {
                    target = try openPublishTarget(o, p, root, direct: wantDirect)
                } else {
                    do {
                        target = FetchTarget(
                            fd: try root.open(o.path, O_WRONLY | O_CREAT | (wantDirect ? csys_o_direct() : 0)),
                            direct: wantDirect)
                    } catch let e as LocalIOError where wantDirect && e.errno == EINVAL {
                        target = FetchTarget(fd: try root.open(o.path, O_WRONLY | O_CREAT), direct: false)
                    }
                }
            } else {
                guard o.publish == nil else {
                    throw LocalIOError(errno: EINVAL, operation: "publish without a destination:", path: o.path)
                }
                guard let t = withDirectFallback(wantDirect, { extra in
                    let fd = Glibc.open(o.path, O_WRONLY | O_CREAT | O_CLOEXEC | extra, 0o644)
                    return fd >= 0 ? fd : nil
                }) else { throw LocalIOError(errno: errno, operation: "open", path: o.path) }
                target = t
            }
        } catch {
            return FetchTarget(fd: -1, direct: false, errno: Self.errnoOf(error), failure: "\(error)")
        }
        if WorkerLoop.preallocate && o.length > WorkerLoop.stagingSize(direct: target.direct) {
            // Allocate the range's blocks up front: ext4 then skips its per-page delayed-allocation
            // bookkeeping, and the file is contiguous. A range that fits in the staging buffer
            // is written by one pwrite, which gains nothing from it. Unsupported (EOPNOTSUPP) or no room
            // (ENOSPC, which the writes then report): go on without.
            _ = csys_fallocate(target.fd, off_t(o.fileOffset), off_t(o.length))
        }
        return target
    }

    /// `open(extra)` with O_DIRECT when `direct`, again without it where the filesystem refuses
    /// O_DIRECT (tmpfs: EINVAL). nil when the open failed (errno set).
    static func withDirectFallback(_ direct: Bool, _ open: (Int32) throws -> Int32?) rethrows -> FetchTarget? {
        if direct {
            if let fd = try open(csys_o_direct()) { return FetchTarget(fd: fd, direct: true) }
            guard errno == EINVAL else { return nil }
        }
        return try open(0).map { FetchTarget(fd: $0, direct: false) }
    }

    /// Errors that say a filesystem has no O_TMPFILE (EISDIR: a kernel before 3.11).
    static let noTmpfileErrors: Set<Int32> = [EOPNOTSUPP, EISDIR, EINVAL, ENOSYS]

    /// A whole object's target: an unnamed file in its final directory, or where the filesystem
    /// has none, the named temporary file `o.path`.
    static func openPublishTarget(_ o: FetchOrder, _ p: PublishSpec, _ root: DestinationRoot,
                                  direct: Bool) throws -> FetchTarget {
        let parentRel = parentDirectory(of: p.finalPath)
        let parent = try root.openDirectory(parentRel == "." ? "" : parentRel)
        var st = stat()
        let dev = fstat(parent, &st) == 0 ? UInt64(st.st_dev) : nil
        if dev.map(WorkerDestinations.hasTmpfile) ?? true {
            if var t = withDirectFallback(direct, { extra in
                let fd = csys_open_tmpfile(parent, extra, 0o644)
                return fd >= 0 ? fd : nil
            }) {
                if let dev { WorkerDestinations.setTmpfile(dev, true) }
                t.parent = parent
                return t
            }
            let e = errno
            guard noTmpfileErrors.contains(e), let dev else {
                close(parent)
                throw LocalIOError(errno: e, operation: "open a file in", path: root.display(parentRel))
            }
            WorkerDestinations.setTmpfile(dev, false)
        }
        let tempRel = parentDirectory(of: o.path)
        let tempDir: Int32
        do { tempDir = try root.openDirectory(tempRel) } catch { close(parent); throw error }
        let name = String(o.path.split(separator: "/").last ?? "")
        guard var t = withDirectFallback(direct, { extra in
            let fd = openat(tempDir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | extra, 0o644)
            return fd >= 0 ? fd : nil
        }) else {
            let e = errno
            close(parent); close(tempDir)
            throw LocalIOError(errno: e, operation: "open", path: root.display(o.path))
        }
        t.parent = parent
        t.tempDirectory = tempDir
        t.tempName = name
        return t
    }

    /// Stamps the ETag and mtime on a complete file and gives it its final name: renames the
    /// named temporary file, or links the unnamed one in (an existing file is replaced through
    /// a temporary name and rename). A symbolic link or directory under that name is left alone
    /// and the order fails.
    public static func publish(_ t: FetchTarget, _ p: PublishSpec, order o: FetchOrder) throws {
        guard let rootPath = o.root else { throw LocalIOError(errno: EINVAL, operation: "publish", path: p.finalPath) }
        let root = try WorkerDestinations.root(rootPath)
        PublishSpec.stamp(fd: t.fd, etag: p.etag, mtime: p.mtime)
        let name = String(p.finalPath.split(separator: "/").last ?? "")
        if let temp = t.tempName {
            try root.checkReplaceable(in: t.parent, name, rel: p.finalPath)
            guard renameat(t.tempDirectory, temp, t.parent, name) == 0 else {
                throw LocalIOError(errno: errno, operation: "rename into place", path: root.display(p.finalPath))
            }
            PublishSpec.stampMtime(fd: t.fd, mtime: p.mtime)
            return
        }
        if link(fd: t.fd, dir: t.parent, name: name) { return }
        guard errno == EEXIST else {
            throw LocalIOError(errno: errno, operation: "link into place", path: root.display(p.finalPath))
        }
        try root.checkReplaceable(in: t.parent, name, rel: p.finalPath)
        let tmp = name + ".soak-tmp-\(getpid())"
        unlinkat(t.parent, tmp, 0)
        guard link(fd: t.fd, dir: t.parent, name: tmp) else {
            throw LocalIOError(errno: errno, operation: "link", path: root.display(parentDirectory(of: p.finalPath) + "/" + tmp))
        }
        guard renameat(t.parent, tmp, t.parent, name) == 0 else {
            let e = errno
            unlinkat(t.parent, tmp, 0)
            throw LocalIOError(errno: e, operation: "rename into place", path: root.display(p.finalPath))
        }
    }

    /// Whether linking by descriptor (AT_EMPTY_PATH) is allowed here: it needs
    /// CAP_DAC_READ_SEARCH. Cleared at the first ENOENT/EPERM; the /proc path works for anyone.
    static var linkByDescriptor: Bool {
        get { linkLock.lock(); defer { linkLock.unlock() }; return byDescriptor }
        set { linkLock.lock(); byDescriptor = newValue; linkLock.unlock() }
    }
    private static let linkLock = NSLock()
    nonisolated(unsafe) private static var byDescriptor = true  // guarded by `linkLock`

    /// Names the open O_TMPFILE `fd` as `name` in directory `dir`; false with errno set on
    /// failure. By descriptor when allowed, which skips resolving `/proc/self/fd/N` (a fifth of
    /// the link's cost).
    static func link(fd: Int32, dir: Int32, name: String) -> Bool {
        if linkByDescriptor {
            if csys_link_fd(fd, dir, name) == 0 { return true }
            guard errno == ENOENT || errno == EPERM else { return false }
            linkByDescriptor = false
        }
        return linkat(AT_FDCWD, "/proc/self/fd/\(fd)", dir, name, AT_SYMLINK_FOLLOW) == 0
    }

    public static func errnoOf(_ error: Error) -> Int32 {
        (error as? LocalIOError)?.errno ?? (error as? SymlinkRefused)?.errno ?? EIO
    }
}

/// A worker's open destinations and what it learnt about their filesystems; shared by the
/// loop's thread and the `FilePreparer`'s.
enum WorkerDestinations {
    /// Destinations held open at once, least recently used closed first. A download has one
    /// DEST, so this only bounds a process that sees many (the unit tests, one DEST each).
    static let maxOpenRoots = 8

    private struct State {
        /// Open destinations by path, least recently used first in `order`.
        var roots: [String: DestinationRoot] = [:]
        var order: [String] = []
        /// Whether O_TMPFILE works, by device (`st_dev`).
        var tmpfile: [UInt64: Bool] = [:]
    }
    private static let state = Mutex(State())

    /// DEST `path`, opened at its first use and kept open while among the `maxOpenRoots` last
    /// used. Dropping one closes it once no order holds it (`DestinationRoot.deinit`).
    static func root(_ path: String) throws -> DestinationRoot {
        if let r = state.withLock({ s -> DestinationRoot? in
            guard let r = s.roots[path] else { return nil }
            if s.order.last != path { s.order.removeAll { $0 == path }; s.order.append(path) }
            return r
        }) { return r }
        let opened = try DestinationRoot(path: path)  // outside the lock: it may wait on the filesystem
        return state.withLock { s in
            if let r = s.roots[path] { return r }  // another thread opened it meanwhile
            s.roots[path] = opened
            s.order.append(path)
            while s.order.count > maxOpenRoots { s.roots[s.order.removeFirst()] = nil }
            return opened
        }
    }

    /// Destinations held open now (for tests).
    static var openRoots: Int { state.withLock { $0.roots.count } }

    /// True until an open on `dev` showed it has no O_TMPFILE.
    static func hasTmpfile(_ dev: UInt64) -> Bool {
        state.withLock { $0.tmpfile[dev] ?? true }
    }

    static func setTmpfile(_ dev: UInt64, _ supported: Bool) {
        state.withLock { $0.tmpfile[dev] = supported }
    }
}
