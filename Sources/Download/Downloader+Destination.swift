/// `Downloader`'s files in DEST: the destination and its partial directory, directories, and
/// whether an object's file is already there and complete. Every path below DEST goes through
/// `DestinationRoot` (no symbolic link followed out of DEST, written through or replaced).
import CSys
import Engine
import Foundation
import S3
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension Downloader {
    /// mtime granularity tolerated when the mtime is the only mark of a file's version (no
    /// xattrs): FAT keeps modification times in 2-second steps, rounded down.
    static let coarseMtimeSeconds = 2

    /// What is at an object's path before it is fetched.
    enum Existing {
        /// Nothing, or not this version: fetch it.
        case absent
        case upToDate
        /// A symbolic link soak may not follow or replace is in the way.
        case refused(SymlinkRefused)
    }

    /// Complete and unchanged: a regular file (not a link) with the listing's size and the ETag
    /// stamped at download, or, where xattrs are unsupported (vfat, some NFS), the listing's
    /// mtime as the filesystem keeps it.
    func existing(_ rel: String, _ o: ObjectInfo) -> Existing {
        guard let root else { return .absent }
        let fd: Int32
        do { fd = try root.open(rel, O_RDONLY | O_NONBLOCK | O_NOCTTY) } catch let e as SymlinkRefused {
            return .refused(e)
        } catch { return .absent }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int64(st.st_size) == o.size else { return .absent }
        var buf = [CChar](repeating: 0, count: 256)
        let n = csys_fgetxattr(fd, PublishSpec.etagXattr, &buf, buf.count - 1)
        if n >= 0 {
            let same = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == o.etag
            return same ? .upToDate : .absent
        }
        guard errno == ENOTSUP, let lm = o.lastModified else { return .absent }
        return Self.mtimeMatches(Int(st.st_mtim.tv_sec), Int(lm.rounded(.down))) ? .upToDate : .absent
    }

    /// `stored` (seconds) is what a filesystem keeps of mtime `wanted`: the same second, or up
    /// to `coarseMtimeSeconds` earlier (FAT rounds down to even seconds).
    static func mtimeMatches(_ stored: Int, _ wanted: Int) -> Bool {
        stored <= wanted && wanted - stored < coarseMtimeSeconds
    }

    func prepareDestination(_ dest: String) throws {
        let empty = Self.isEmptyOrMissing(dest)
        place.withLock { $0.startedEmpty = empty }
        try createDirectories(dest)
        guard access(dest, W_OK) == 0 else {
            throw LocalIOError(errno: errno, operation: "destination is not writable:", path: dest)
        }
        let root = try DestinationRoot(path: dest)
        place.withLock { $0.root = root }
        let name = PartialFile.directoryName
        if mkdirat(root.fd, name, 0o755) == 0 {
            place.withLock { $0.ownsPartialDirectory = true }
        } else if errno != EEXIST {
            throw LocalIOError(errno: errno, operation: "mkdir", path: root.display(name))
        }
        let fd = openat(root.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if DestinationRoot.kind(in: root.fd, name) == S_IFLNK { throw SymlinkRefused(path: root.display(name)) }
            throw LocalIOError(errno: errno, operation: "open", path: root.display(name))
        }
        let owns = place.withLock { $0.ownsPartialDirectory } || Self.holdsSoakFiles(fd)
        place.withLock { $0.partialFD = fd; $0.ownsPartialDirectory = owns }
    }

    /// Whether directory `fd` holds a file soak names in its partial directory.
    static func holdsSoakFiles(_ fd: Int32) -> Bool {
        let dup = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dup >= 0 else { return false }
        guard let d = fdopendir(dup) else { close(dup); return false }
        defer { closedir(d) }
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasSuffix(".part") || name.hasSuffix(".state") || PartialFile.isTemporaryName(name) { return true }
        }
        return false
    }

    /// True when `dir` does not exist or has no entry but `.` and `..`.
    static func isEmptyOrMissing(_ dir: String) -> Bool {
        guard let d = opendir(dir) else { return errno == ENOENT }
        defer { closedir(d) }
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { return false }
        }
        return true
    }

    /// The directory of relative path `rel`, "" for DEST itself.
    func parentOf(_ rel: String) -> String {
        let p = parentDirectory(of: rel)
        return p == "." ? "" : p
    }

    /// `mkdir -p` of `rel` beneath DEST.
    func makeDirectories(_ rel: String) throws {
        guard let root else { throw LocalIOError(errno: EBADF, operation: "mkdir", path: rel) }
        if knownDirectories.withLock({ $0.contains(rel) }) { return }
        try root.makeDirectories(rel)
        knownDirectories.withLock { _ = $0.insert(rel) }
    }

    /// `mkdir -p` of DEST itself (reached as the user gave it).
    func createDirectories(_ path: String) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw LocalIOError(errno: ENOTDIR, operation: "mkdir", path: path) }
            return
        }
        let parent = parentDirectory(of: path)
        if !parent.isEmpty && parent != path { try createDirectories(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw LocalIOError(errno: errno, operation: "mkdir", path: path)
        }
    }

    /// Ends the run's use of the partial directory (the workers are stopped): removes the
    /// temporary files a crash left there, which are never resumed from (named temporary files
    /// of whole objects, states caught mid-write, and the randomly named `.dat.nosync*` files
    /// older soaks wrote states through), then the directory itself if it is empty and soak's:
    /// made by this run, or found holding soak's files. Runs on every exit of `run`, failed ones
    /// included.
    func closePartialDirectory() {
        let (root, partialFD, owns) = place.withLock { p in
            let was = (p.root, p.partialFD, p.ownsPartialDirectory)
            if p.root != nil { p.partialFD = -1 }
            return was
        }
        guard let root, partialFD >= 0 else { return }
        var names: [String] = []
        let dup = openat(partialFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dup >= 0, let d = fdopendir(dup) {
            while let e = readdir(d) {
                names.append(withUnsafeBytes(of: e.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                })
            }
            closedir(d)
        } else if dup >= 0 {
            close(dup)
        }
        for n in names where PartialFile.isTemporaryName(n) || n.hasPrefix(".dat.nosync") {
            unlinkat(partialFD, n, 0)
        }
        close(partialFD)
        if owns { unlinkat(root.fd, PartialFile.directoryName, AT_REMOVEDIR) }
    }
}
