/// Whether a directory is a soak cache, and making one: the one place every entry point (the
/// cache commands, prewarm, mount, status) asks before it creates, opens or removes anything in
/// a cache directory.
///
/// A directory is soak's only if soak made it: soak marks a cache it creates with
/// `CACHEDIR.TAG` (the Cache Directory Tagging format, so backup tools skip it, plus a line
/// with soak's magic and the format version, see `CacheFormat`). A cache made before the marker
/// existed is recognised by its index's 100-byte SQLite header (application_id and
/// user_version), read as plain bytes: SQLite never opens a file soak has not proved its own,
/// since merely opening one switched another program's database to WAL mode.
import Foundation
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

public enum CacheDirectory {
    /// The marker's name (the Cache Directory Tagging specification's).
    public static let markerName = "CACHEDIR.TAG"
    /// The specification's first line; any CACHEDIR.TAG starts with it.
    static let signature = "Signature: 8a477f597d28d172789f06886806bc55"
    /// soak's line in the marker, followed by the format version.
    static let magic = "soak-cache-format "
    /// Larger than any marker soak writes: a bigger file is not soak's.
    static let markerMaxBytes = 4096
    /// Entries a directory may hold and still count as empty: a file system's own
    /// `lost+found` (a dedicated disk mounted as the cache).
    static let ignorable: Set<String> = ["lost+found"]

    public enum Kind: Equatable, Sendable {
        /// Nothing at the path.
        case missing
        /// A directory holding nothing (or only `lost+found`, or a marker being written).
        case empty
        /// A marked soak cache of this format version.
        case marked(version: Int32)
        /// A soak cache made before the marker: its index's header says soak, this user_version.
        case legacy(version: Int32)
        /// Anything else; why, in words.
        case foreign(String)
    }

    /// What is at `path`, judged without opening anything with SQLite.
    public static func classify(_ path: String) throws -> Kind {
        for _ in 0..<3 {
            if let k = try classifyOnce(path) { return k }
        }
        return .foreign("its contents keep changing")
    }

    /// nil when the marker appeared while the directory was being listed (another soak
    /// process marking it): the caller looks again.
    private static func classifyOnce(_ path: String) throws -> Kind? {
        var st = stat()
        if stat(path, &st) != 0 {
            if errno == ENOENT { return .missing }
            throw CacheError.unusableDirectory(LocalIOError(errno: errno, operation: "stat", path: path))
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CacheError.unusableDirectory(LocalIOError(errno: ENOTDIR, operation: "cache directory", path: path))
        }
        if let version = try readMarker(path) {
            return version < 0 ? .foreign("its \(markerName) was written by another program") : .marked(version: version)
        }
        let entries = try list(path)
        if entries.contains(markerName) { return nil }
        let others = entries.filter { !ignorable.contains($0) && !isMarkerTemp($0) }
        if others.isEmpty { return .empty }
        guard others.contains("index.db") else { return .foreign("it holds files soak did not create") }
        var header = try IndexHeader.read(path + "/index.db")
        if header == .empty || header == .unowned, let logged = IndexHeader.fromWAL(path + "/index.db-wal") { header = logged }
        switch header {
        case .soak(let v): return .legacy(version: v)
        case .noFile, .other, .empty, .unowned: return .foreign("its index.db is not a soak cache index")
        }
    }

    /// Makes `path` a soak cache for a command that writes: a missing directory is created with
    /// its parents (mode 0700), a missing, empty or legacy one is marked. Refuses (throws,
    /// having created nothing) anything else, and a marker of a newer format.
    public static func prepare(_ path: String) throws { try admit(path, create: true) }

    /// For a command that only reads or tidies an existing cache: `path` must already be a
    /// soak cache (a legacy one gets its marker, the only thing written). Creates nothing else.
    public static func requireExisting(_ path: String) throws { try admit(path, create: false) }

    /// The one decision both entry points share; only a missing or empty directory differs.
    private static func admit(_ path: String, create: Bool) throws {
        switch try classify(path) {
        case .missing, .empty:
            guard create else { throw CacheError.noCache(directory: path) }
            try makeDirectories(path)  // creates what is missing; an empty one is left as it is
            try mark(path)
        case .legacy(let v):
            try checkLegacy(path, version: v)
            try mark(path)
        case .marked(let v):
            try checkMarked(path, version: v)
        case .foreign(let why):
            throw CacheError.notACache(directory: path, reason: why)
        }
    }

    private static func checkLegacy(_ path: String, version: Int32) throws {
        if version > CacheFormat.version {
            throw CacheError.newerFormat(directory: path, found: version, supported: CacheFormat.version)
        }
    }

    /// A marked cache of a newer format is refused before its index is opened; so is a marked
    /// directory whose index.db is not soak's (someone else's file put there).
    private static func checkMarked(_ path: String, version: Int32) throws {
        if version > CacheFormat.version {
            throw CacheError.newerFormat(directory: path, found: version, supported: CacheFormat.version)
        }
        switch try IndexHeader.read(path + "/index.db") {
        case .noFile, .empty, .unowned, .soak: return
        case .other: throw CacheError.notACache(directory: path, reason: "its index.db is not a soak cache index")
        }
    }

    /// The marker's text for the current format.
    static var markerText: String {
        "\(signature)\n# This directory is a soak cache: soak may delete its contents, backup tools may skip it.\n"
            + "# See https://bford.info/cachedir/ for cache directory tags.\n\(magic)\(CacheFormat.version)\n"
    }

    /// The format version in `path`'s marker; nil without one, -1 for a CACHEDIR.TAG that is not soak's.
    static func readMarker(_ path: String) throws -> Int32? {
        let file = path + "/" + markerName
        let fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        if fd < 0 {
            if errno == ENOENT { return nil }
            if errno == ELOOP { return -1 }  // a symlink: not what soak writes
            throw CacheError.unusableDirectory(LocalIOError(errno: errno, operation: "open", path: file))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= markerMaxBytes else { return -1 }
        var buf = [UInt8](repeating: 0, count: markerMaxBytes + 1)
        let n = buf.withUnsafeMutableBytes { (try? Syscall.readAll(fd, into: $0, path: file)) ?? 0 }
        guard n > 0 else { return -1 }
        let lines = String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first.map(String.init) == signature else { return -1 }
        for l in lines where l.hasPrefix(magic) {
            if let v = Int32(l.dropFirst(magic.count)), v > 0 { return v }
        }
        return -1
    }

    /// Writes the marker for the current format atomically: a temporary file named by this
    /// process, synced, renamed into place (two processes marking at once both write the
    /// same text; `classify` counts a temporary marker as nothing).
    public static func mark(_ path: String) throws {
        let tmp = path + "/" + markerName + ".\(getpid()).tmp"
        unlink(tmp)  // only ever this process's own name
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CacheError.unusableDirectory(LocalIOError(errno: errno, operation: "create", path: tmp)) }
        let bytes = Array(markerText.utf8)
        var writeError: Int32 = 0
        do { try Syscall.writeAll(fd, bytes, path: tmp) } catch { writeError = error.errno }
        let synced = writeError == 0 && fsync(fd) == 0
        close(fd)
        guard synced, rename(tmp, path + "/" + markerName) == 0 else {
            let err = writeError != 0 ? writeError : errno
            unlink(tmp)
            // Removed as stale by another process marking it at the same time: its marker stands.
            if err == ENOENT, (try? readMarker(path)) == CacheFormat.version { return }
            throw CacheError.unusableDirectory(LocalIOError(errno: err == 0 ? EIO : err, operation: "write", path: tmp))
        }
        let dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
        removeStaleMarkerTemps(path)
    }

    /// Temporary markers of processes that died while marking (a kill -9): soak's own names.
    private static func removeStaleMarkerTemps(_ path: String) {
        for name in (try? list(path)) ?? [] where isMarkerTemp(name) {
            let pid = pid_t(name.dropFirst(markerName.count + 1).dropLast(4)) ?? 0
            if pid > 0 && kill(pid, 0) != 0 && errno == ESRCH { unlink(path + "/" + name) }
        }
    }

    static func isMarkerTemp(_ name: String) -> Bool {
        guard name.hasPrefix(markerName + "."), name.hasSuffix(".tmp") else { return false }
        let pid = name.dropFirst(markerName.count + 1).dropLast(4)
        return !pid.isEmpty && pid.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// `path` and its missing parents, each created mode 0700 (the XDG rule for cache
    /// directories: nobody else reads what a user cached).
    static func makeDirectories(_ path: String) throws {
        var prefix = ""
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + part
            if mkdir(prefix, 0o700) == 0 || errno == EEXIST { continue }
            throw CacheError.unusableDirectory(LocalIOError(errno: errno, operation: "mkdir", path: prefix))
        }
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CacheError.unusableDirectory(LocalIOError(errno: ENOTDIR, operation: "mkdir", path: path))
        }
    }

    private static func list(_ path: String) throws -> [String] {
        guard let d = opendir(path) else {
            throw CacheError.unusableDirectory(LocalIOError(errno: errno, operation: "opendir", path: path))
        }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }
}
