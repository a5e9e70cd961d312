/// The only file that touches libfuse3: a low-level session whose callbacks unpack the request,
/// call a `FuseHandler`, and reply from the result it returns (`FuseRequest.reply(_:)`) —
/// nothing else.
///
/// Callbacks run on libfuse's worker threads. A handler answers at once (cache hits) or calls
/// the completion later from another thread (misses, revalidating opens); libfuse allows either.
import CFuse
import Foundation
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

/// Attributes of one inode as the mount shows it.
public struct FuseAttributes: Sendable {
    public var ino: UInt64
    public var size: Int64
    public var isDirectory: Bool
    /// Links: 1 for a file, 2 + subdirectories for a directory.
    public var links: Int
    public var mtime: Double
    public var uid: UInt32
    public var gid: UInt32
}

/// What the mount does with each request: handlers answer with a result (`FuseReply` or
/// `FSError`) and never see libfuse. `open` and `read` may complete later from another thread
/// (a revalidation, a miss); their completion must be called exactly once.
public protocol FuseHandler: AnyObject, Sendable {
    func lookup(parent: UInt64, name: String) -> FSResult
    func getattr(ino: UInt64) -> FSResult
    func opendir(ino: UInt64) -> FSResult
    func readdir(ino: UInt64, fh: UInt64, offset: Int64) -> FSResult
    func releasedir(ino: UInt64, fh: UInt64) -> FSResult
    func open(ino: UInt64, flags: Int32, done: @escaping FSCompletion)
    func read(ino: UInt64, fh: UInt64, size: Int, offset: Int64, done: @escaping FSCompletion)
    func release(ino: UInt64, fh: UInt64) -> FSResult
    func statfs() -> FSResult
}

/// The answer to every request that would change the tree or a file.
private let readOnlyMount = FSError(.readOnly, "the mount is read-only")

/// One request waiting for its reply.
struct FuseRequest: @unchecked Sendable {  // @unchecked: a C fuse_req_t (libfuse owns it), replied to from any thread, once
    let req: fuse_req_t

    /// Replies with a handler's result; `size` is the kernel's buffer for directory entries.
    func reply(_ result: FSResult, size: Int = 0) {
        switch result {
        case .failure(let e): reply(error: e.errno)
        case .success(.entry(let a, let ttl)): reply(entry: a, ttl: ttl)
        case .success(.noEntry(let ttl)): replyNoEntry(ttl: ttl)
        case .success(.attr(let a, let ttl)): reply(attr: a, ttl: ttl)
        case .success(.open(let fh, let keepCache)): reply(open: fh, keepCache: keepCache)
        case .success(.data(let buf)): withExtendedLifetime(buf) { reply(data: buf.bytes) }
        case .success(.directory(let entries, let offset)): reply(directory: entries, size: size, offset: offset)
        case .success(.statfs(let blocks, let files)): reply(statfs: blocks, files: files)
        case .success(.none): reply(error: 0)
        }
    }

    static func stat(_ a: FuseAttributes) -> stat {
        var st = Glibc.stat()
        st.st_ino = __ino_t(a.ino)
        st.st_mode = a.isDirectory ? (S_IFDIR | 0o555) : (S_IFREG | 0o444)
        st.st_nlink = nlink_t(a.links)
        st.st_size = off_t(a.size)
        st.st_blksize = 1 << 20
        st.st_blocks = blkcnt_t((a.size + 511) / 512)
        st.st_uid = a.uid
        st.st_gid = a.gid
        let ts = timespec(tv_sec: Int(a.mtime), tv_nsec: Int((a.mtime - a.mtime.rounded(.down)) * 1e9))
        st.st_mtim = ts; st.st_ctim = ts; st.st_atim = ts
        return st
    }

    private func reply(entry a: FuseAttributes, ttl: Double) {
        var e = fuse_entry_param()
        e.ino = a.ino
        e.generation = 1
        e.attr = Self.stat(a)
        e.attr_timeout = ttl
        e.entry_timeout = ttl
        _ = fuse_reply_entry(req, &e)
    }

    /// A negative lookup, cached by the kernel for `ttl` seconds.
    private func replyNoEntry(ttl: Double) {
        var e = fuse_entry_param()
        e.ino = 0
        e.entry_timeout = ttl
        _ = fuse_reply_entry(req, &e)
    }

    private func reply(attr a: FuseAttributes, ttl: Double) {
        var st = Self.stat(a)
        _ = fuse_reply_attr(req, &st, ttl)
    }

    /// Opened: the file's bytes never change under this inode, so the kernel may keep its cache.
    private func reply(open fh: UInt64, keepCache: Bool) {
        var fi = fuse_file_info()
        fi.fh = fh
        cfuse_fi_set_keep_cache(&fi, keepCache ? 1 : 0)
        _ = fuse_reply_open(req, &fi)
    }

    private func reply(data: UnsafeRawBufferPointer) {
        _ = fuse_reply_buf(req, data.baseAddress?.assumingMemoryBound(to: CChar.self), data.count)
    }

    private func reply(error: Int32) { _ = fuse_reply_err(req, error) }

    private func reply(statfs blocks: UInt64, files: UInt64) {
        var s = statvfs()
        s.f_bsize = 1 << 20
        s.f_frsize = 1 << 20
        s.f_blocks = fsblkcnt_t(blocks)
        s.f_files = fsfilcnt_t(files)
        s.f_namemax = 255
        _ = fuse_reply_statfs(req, &s)
    }

    /// Directory entries from `offset` (an index into `entries`) that fit in `size` bytes.
    private func reply(directory entries: [DirectoryEntry], size: Int, offset: Int) {
        var buf = [CChar](repeating: 0, count: size)
        var used = 0
        var i = max(0, offset)
        while i < entries.count {
            var st = Self.stat(entries[i].attr)
            let n = buf.withUnsafeMutableBufferPointer { b in
                fuse_add_direntry(req, b.baseAddress! + used, size - used, entries[i].name, &st, off_t(i + 1))
            }
            if n > size - used { break }
            used += n
            i += 1
        }
        _ = buf.withUnsafeBufferPointer { fuse_reply_buf(req, $0.baseAddress, used) }
    }
}

/// Why a mount could not start.
public struct MountError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A libfuse low-level session on one mountpoint.
public final class FuseSession: @unchecked Sendable {  // @unchecked: libfuse's session pointer, used by `run` and `exit`
    private var session: OpaquePointer?
    private let handlerBox: Unmanaged<HandlerBox>
    private var argv: [UnsafeMutablePointer<CChar>?]
    private var mounted = false
    /// Largest read the kernel sends and its read-ahead window: 1 MiB, one cache block.
    public static let maxReadahead: UInt32 = 1 << 20

    final class HandlerBox { let h: FuseHandler; init(_ h: FuseHandler) { self.h = h } }

    /// `options` are `-o` mount options (ro, fsname=…, allow_other…).
    public init(handler: FuseHandler, options: [String]) throws {
        handlerBox = Unmanaged.passRetained(HandlerBox(handler))
        let words: [String] = ["soak", "-o", options.joined(separator: ",")]
        argv = words.map { w -> UnsafeMutablePointer<CChar>? in strdup(w) } + [nil]
        var args = argv.withUnsafeMutableBufferPointer { cfuse_args(Int32($0.count - 1), $0.baseAddress) }
        var ops = Self.operations()
        session = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, handlerBox.toOpaque())
        guard session != nil else {
            release()
            throw MountError("could not create the FUSE session (bad mount options \(options.joined(separator: ",")))")
        }
    }

    deinit { release() }

    private func release() {
        if let s = session {
            if mounted { fuse_session_unmount(s) }
            fuse_session_destroy(s)
            session = nil
        }
        for p in argv { free(p) }
        argv = []
    }

    public func mount(at path: String) throws {
        guard let s = session else { throw MountError("no FUSE session") }
        guard fuse_session_mount(s, path) == 0 else {
            throw MountError("could not mount on \(path) (is /dev/fuse available, and fusermount3 installed?)")
        }
        mounted = true
    }

    /// Serves requests on up to `threads` threads until unmounted or `exit` is called;
    /// SIGINT, SIGTERM and SIGHUP end it too.
    public func run(threads: UInt32) -> Int32 {
        guard let s = session else { return -1 }
        _ = fuse_set_signal_handlers(s)
        let rc = cfuse_session_loop_mt(s, threads)
        fuse_remove_signal_handlers(s)
        return rc
    }

    /// Ends `run` (from any thread).
    public func exit() { if let s = session { fuse_session_exit(s) } }

    /// Unmounts and frees the session.
    public func close() {
        release()
        handlerBox.release()
    }

    // MARK: - Callbacks (unpack, dispatch)


    private static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { _, conn in if let conn { cfuse_conn_configure(conn, 1 << 20) } }  // = maxReadahead
        ops.lookup = { req, parent, name in
            FuseRequest(req: req!).reply(fuseHandler(req).lookup(parent: UInt64(parent), name: String(cString: name!)))
        }
        ops.getattr = { req, ino, _ in FuseRequest(req: req!).reply(fuseHandler(req).getattr(ino: UInt64(ino))) }
        ops.opendir = { req, ino, _ in FuseRequest(req: req!).reply(fuseHandler(req).opendir(ino: UInt64(ino))) }
        ops.readdir = { req, ino, size, off, fi in
            FuseRequest(req: req!).reply(fuseHandler(req).readdir(ino: UInt64(ino), fh: fi?.pointee.fh ?? 0, offset: Int64(off)),
                                         size: size)
        }
        ops.releasedir = { req, ino, fi in
            FuseRequest(req: req!).reply(fuseHandler(req).releasedir(ino: UInt64(ino), fh: fi?.pointee.fh ?? 0))
        }
        ops.open = { req, ino, fi in
            let r = FuseRequest(req: req!)
            fuseHandler(req).open(ino: UInt64(ino), flags: fi?.pointee.flags ?? 0) { r.reply($0) }
        }
        ops.read = { req, ino, size, off, fi in
            let r = FuseRequest(req: req!)
            fuseHandler(req).read(ino: UInt64(ino), fh: fi?.pointee.fh ?? 0, size: size, offset: Int64(off)) { r.reply($0) }
        }
        ops.release = { req, ino, fi in
            FuseRequest(req: req!).reply(fuseHandler(req).release(ino: UInt64(ino), fh: fi?.pointee.fh ?? 0))
        }
        ops.statfs = { req, _ in FuseRequest(req: req!).reply(fuseHandler(req).statfs()) }
        // Read-only: everything that would change the tree or a file gets `FSError.Kind.readOnly`.
        ops.setattr = { req, _, _, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.mknod = { req, _, _, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.mkdir = { req, _, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.unlink = { req, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.rmdir = { req, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.symlink = { req, _, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.rename = { req, _, _, _, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.link = { req, _, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.write = { req, _, _, _, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.create = { req, _, _, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.setxattr = { req, _, _, _, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.removexattr = { req, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        ops.fallocate = { req, _, _, _, _, _ in FuseRequest(req: req!).reply(.failure(readOnlyMount)) }
        return ops
    }
}

/// The handler of the session a request belongs to (its userdata).
private func fuseHandler(_ req: fuse_req_t?) -> FuseHandler {
    Unmanaged<FuseSession.HandlerBox>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue().h
}

/// The libfuse3 version this build links against.
public func fuseVersion() -> String { String(cString: fuse_pkgversion()) }
