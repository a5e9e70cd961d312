/// `MountService`'s checks and settings around the mountpoint: whether it can be mounted on
/// (detaching a dead FUSE mount a kill -9 left), the kernel's read-ahead on it, and the stop
/// signals the FUSE loop's thread takes.
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension MountService {
    /// Checks the mountpoint: an existing, empty directory. A dead FUSE mount left by a kill -9
    /// ("transport endpoint is not connected") is detached first. A live FUSE mount there (soak
    /// or another) is refused; an empty directory that is the mount point of another file system
    /// is mounted over, because that is how containers get their mountpoint: a bind-mounted
    /// volume (Docker's `-v host:/mnt/soak:rshared`, a Kubernetes hostPath).
    public static func prepareMountpoint(_ path: String, logger: Logger) throws {
        if isMountpoint(path) {
            // A live mount answers; a dead FUSE connection fails with ENOTCONN (its cached
            // attributes may still make stat() succeed, so open the directory).
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 {
                close(fd)
                let type = topFileSystemType(path) ?? "fuse"
                if type == "fuse" || type == "fuseblk" || type.hasPrefix("fuse.") {
                    throw MountError("\(path) is already a mount point (\(type))")
                }
                logger.debug("\(path) is the mount point of a \(type) file system (a bind-mounted volume?); mounting over it")
            } else {
                try detachStale(path, logger: logger)
            }
        }
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw MountError(errno == ENOENT ? "mountpoint \(path) does not exist"
                                             : "mountpoint \(path): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw MountError("mountpoint \(path) is not a directory") }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        guard entries.isEmpty else { throw MountError("mountpoint \(path) is not empty") }
    }

    /// Detaches the dead FUSE mount at `path` (its open failed; only ENOTCONN/ECONNABORTED mean dead).
    private static func detachStale(_ path: String, logger: Logger) throws {
        guard errno == ENOTCONN || errno == ECONNABORTED else {
            throw MountError("\(path) is a mount point that cannot be opened: \(String(cString: strerror(errno)))")
        }
        logger.warning("\(path) is a stale FUSE mount (its server died); unmounting it")
        guard umount2(path, Int32(MNT_DETACH)) == 0 else {
            throw MountError("\(path) is a stale FUSE mount and could not be unmounted: \(String(cString: strerror(errno)))")
        }
    }

    /// The type of the file system mounted last (the one seen) at `path`, from /proc/self/mountinfo:
    /// the first field after the " - " separator; the mount point is field 5, octal-escaped.
    static func topFileSystemType(_ path: String) -> String? {
        guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        let escaped = path.replacingOccurrences(of: "\\", with: "\\134").replacingOccurrences(of: " ", with: "\\040")
            .replacingOccurrences(of: "\t", with: "\\011").replacingOccurrences(of: "\n", with: "\\012")
        let line = info.split(separator: "\n").last { line in
            line.split(separator: " ", omittingEmptySubsequences: false).dropFirst(4).first.map(String.init) == escaped
        }
        guard let line, let sep = line.range(of: " - ") else { return nil }
        return line[sep.upperBound...].split(separator: " ").first.map(String.init)
    }

    /// The kernel reads ahead 128 KiB on a FUSE mount by default, so a sequential reader's
    /// requests arrive as 256 KiB reads; at `kib` (1 MiB) they arrive as one block each
    /// (docs/BENCHMARKS.md, mount read-ahead). Needs root; without it the default stays.
    static func raiseKernelReadAhead(_ mountpoint: String, kib: Int, logger: Logger) {
        // Not stat(): the mount does not answer until its loop runs. mountinfo field 3 is MAJ:MIN.
        guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
              let line = info.split(separator: "\n").last(where: {
                  $0.split(separator: " ").dropFirst(4).first.map(String.init) == mountpoint }),
              let dev = line.split(separator: " ").dropFirst(2).first else { return }
        let path = "/sys/class/bdi/\(dev)/read_ahead_kb"
        do {
            try "\(kib)\n".write(toFile: path, atomically: false, encoding: .utf8)
        } catch {
            logger.debug("could not raise the kernel read-ahead (\(path)): \(error)")
        }
    }

    /// Blocks (or unblocks) SIGINT, SIGTERM and SIGHUP for the calling thread; threads it starts
    /// afterwards inherit the mask. `soak mount` blocks them first thing, before any thread exists.
    public static func setStopSignals(blocked: Bool) {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, sig) }
        pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, nil)
    }

    /// Whether `path` is the mount point of some file system (from /proc/self/mountinfo).
    static func isMountpoint(_ path: String) -> Bool {
        guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        // Field 5 is the mount point, with spaces and friends octal-escaped.
        let escaped = path.replacingOccurrences(of: "\\", with: "\\134").replacingOccurrences(of: " ", with: "\\040")
            .replacingOccurrences(of: "\t", with: "\\011").replacingOccurrences(of: "\n", with: "\\012")
        return info.split(separator: "\n").contains { line in
            line.split(separator: " ", omittingEmptySubsequences: false).dropFirst(4).first.map(String.init) == escaped
        }
    }
}
