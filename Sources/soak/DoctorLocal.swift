import CSys
import Cache
import Foundation
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

/// The local checks of `soak doctor`: FUSE (device, fusermount3, user_allow_other), AppArmor,
/// and the cache directory's file system (room, O_TMPFILE, user.* xattrs). They create nothing
/// that outlives the check: the feature probes use an unnamed file (O_TMPFILE), or where there
/// is none, a file of their own that is unlinked as soon as it is open.
enum DoctorLocal {
    static let fuseDevice = "/dev/fuse"
    static let fuseConf = "/etc/fuse.conf"
    /// The xattr the probe sets, reads back and removes on its own file.
    static let probeXattr = "user.soak.doctor"
    /// Where fusermount3 is looked for besides $PATH (a service's PATH is often minimal).
    static let fusermountDirs = ["/usr/bin", "/bin", "/usr/local/bin"]

    static func fuse(allowOther: Bool, env: [String: String]) -> [DoctorCheck] {
        var out = [device(), fusermount(env: env)]
        if allowOther { out.append(userAllowOther()) }
        out.append(DoctorRules.appArmor(enabled: read("/sys/module/apparmor/parameters/enabled"),
                                        label: read("/proc/self/attr/apparmor/current") ?? read("/proc/self/attr/current")))
        return out
    }

    static func device() -> DoctorCheck {
        var st = stat()
        guard stat(fuseDevice, &st) == 0 else {
            return .fail("fuse-device", "\(fuseDevice) is missing: load the fuse module (modprobe fuse); in a container pass --device /dev/fuse")
        }
        guard (st.st_mode & S_IFMT) == S_IFCHR else { return .fail("fuse-device", "\(fuseDevice) is not a character device") }
        let fd = open(fuseDevice, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            return .fail("fuse-device", "\(fuseDevice) does not open read-write: \(String(cString: strerror(errno))) "
                         + "(a container needs --device /dev/fuse and CAP_SYS_ADMIN)")
        }
        close(fd)
        return .ok("fuse-device", "\(fuseDevice) opens read-write")
    }

    /// fusermount3 mounts and unmounts for users other than root; root mounts with mount(2).
    static func fusermount(env: [String: String]) -> DoctorCheck {
        let dirs = (env["PATH"] ?? "").split(separator: ":").map(String.init) + fusermountDirs
        let root = geteuid() == 0
        guard let path = dirs.map({ $0 + "/fusermount3" }).first(where: { access($0, X_OK) == 0 }) else {
            let text = "fusermount3 not found (Debian: apt-get install fuse3)"
            return root ? .warn("fusermount", text + "; root mounts without it") : .fail("fusermount", text)
        }
        var st = stat()
        // 0o4000: S_ISUID, which Glibc and Foundation both export.
        let setuidRoot = stat(path, &st) == 0 && st.st_uid == 0 && (st.st_mode & 0o4000) != 0
        if !root && !setuidRoot { return .fail("fusermount", "\(path) is not setuid root: users other than root cannot mount") }
        return .ok("fusermount", path)
    }

    static func userAllowOther() -> DoctorCheck {
        if geteuid() == 0 { return .ok("allow-other", "running as root: --allow-other needs no user_allow_other") }
        guard let text = read(fuseConf) else {
            return .fail("allow-other", "\(fuseConf) is missing or unreadable: --allow-other needs user_allow_other in it")
        }
        return DoctorRules.fuseConfAllowsOther(text) ? .ok("allow-other", "user_allow_other is set in \(fuseConf)")
            : .fail("allow-other", "--allow-other needs a line user_allow_other in \(fuseConf)")
    }

    /// The cache directory: what is there, the room on its file system, and its features,
    /// probed in the directory or, while it does not exist yet, in its nearest existing parent.
    static func cache(directory: String, capacity: CacheCapacity) -> [DoctorCheck] {
        let kind: CacheDirectory.Kind
        do { kind = try CacheDirectory.classify(directory) } catch {
            return [.fail("cache-dir", "\(error)")]
        }
        var dirCheck: DoctorCheck
        var probeDir = directory
        switch kind {
        case .missing:
            probeDir = nearestExisting(directory)
            dirCheck = .ok("cache-dir", "\(directory) does not exist yet: the first mount creates it (checked in \(probeDir))")
        case .empty: dirCheck = .ok("cache-dir", "\(directory) is empty: the first mount makes it a cache")
        case .marked, .legacy: dirCheck = .ok("cache-dir", "\(directory) is a soak cache")
        case .foreign(let why): dirCheck = .fail("cache-dir", "\(directory) is not a soak cache (\(why)): soak refuses it")
        }
        var vfs = statvfs()
        guard statvfs(probeDir, &vfs) == 0 else {
            return [dirCheck, .fail("cache-space", "statvfs \(probeDir): \(String(cString: strerror(errno)))")]
        }
        let free = Int64(vfs.f_bavail) * Int64(vfs.f_frsize), total = Int64(vfs.f_blocks) * Int64(vfs.f_frsize)
        var existing = false
        if case .marked = kind { existing = true }
        if case .legacy = kind { existing = true }
        let space = DoctorRules.space(free: free, total: total, capacity: capacity, existing: existing)
        // A directory soak refuses gets no file from soak, not even for a moment.
        if case .foreign = kind {
            return [dirCheck, space, .warn("cache-tmpfile", "not checked"), .warn("cache-xattr", "not checked")]
        }
        let features = probeFeatures(in: probeDir)
        if let writeFailure = features.writeFailure, dirCheck.status != .fail {
            dirCheck = .fail("cache-dir", "cannot create files in \(probeDir): \(writeFailure)")
        }
        return [dirCheck, space, features.tmpfile, features.xattr]
    }

    /// The deepest existing directory on the way to `path` (`/` at worst).
    static func nearestExisting(_ path: String) -> String {
        var p = path
        while p != "/" && !p.isEmpty {
            var st = stat()
            if stat(p, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { return p }
            p = (p as NSString).deletingLastPathComponent
        }
        return "/"
    }

    /// O_TMPFILE, then user.* xattrs set, read back and removed on that file (or, without
    /// O_TMPFILE, on a named file unlinked the moment it is open). `writeFailure` says why no
    /// file could be made at all.
    static func probeFeatures(in dir: String) -> (tmpfile: DoctorCheck, xattr: DoctorCheck, writeFailure: String?) {
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else {
            let why = String(cString: strerror(errno))
            return (.warn("cache-tmpfile", "not checked: \(why)"), .warn("cache-xattr", "not checked: \(why)"), why)
        }
        defer { close(dfd) }
        var fd = csys_open_tmpfile(dfd, 0, 0o600)
        let tmpfile: DoctorCheck
        if fd >= 0 {
            tmpfile = .ok("cache-tmpfile", "O_TMPFILE works")
        } else {
            tmpfile = .warn("cache-tmpfile", "no O_TMPFILE (\(String(cString: strerror(errno)))): "
                            + "downloads here write named partial files instead")
            var template = Array((dir + "/.soak-doctor-XXXXXX").utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            if fd < 0 {
                let why = String(cString: strerror(errno))
                return (tmpfile, .warn("cache-xattr", "not checked: \(why)"), why)
            }
            let name = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            unlink(name)
        }
        defer { close(fd) }
        return (tmpfile, xattr(fd: fd), nil)
    }

    /// user.* xattrs on the open file `fd`: set, read back, removed.
    static func xattr(fd: Int32) -> DoctorCheck {
        let value = "1"
        func missing(_ step: String) -> DoctorCheck {
            .warn("cache-xattr", "no user.* xattrs (\(step): \(String(cString: strerror(errno)))): "
                  + "downloads here compare size and mtime instead of the ETag")
        }
        guard value.withCString({ csys_fsetxattr(fd, probeXattr, $0, strlen($0)) }) == 0 else { return missing("set") }
        var buf = [UInt8](repeating: 0, count: 16)
        let n = csys_fgetxattr(fd, probeXattr, &buf, buf.count)
        guard n >= 0 else { return missing("get") }
        guard String(decoding: buf[0..<n], as: UTF8.self) == value else {
            return .warn("cache-xattr", "user.* xattrs read back wrong: downloads here compare size and mtime instead")
        }
        guard csys_fremovexattr(fd, probeXattr) == 0 else { return missing("remove") }
        return .ok("cache-xattr", "user.* xattrs set, read and removed")
    }

    /// A small system file's text, nil when absent or unreadable.
    static func read(_ path: String) -> String? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: d, as: UTF8.self)
    }
}
