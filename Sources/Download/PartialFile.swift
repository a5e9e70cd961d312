/// A download in progress: data under a temporary name plus a small state file saying which
/// parts are complete, both in `DEST/.soak-partial/`.
///
/// Names are a hash of the relative path, so hostile keys never shape temporary paths. The
/// state file is replaced atomically (write to a temp name, rename) after each part lands, and
/// a part is only recorded after its worker reported every byte written; after a kill -9 the
/// state therefore never claims bytes that are not in the data file. A state whose ETag or size
/// differs from the current listing is discarded together with its data.
///
/// Whole objects on a filesystem without O_TMPFILE are written by the worker into
/// `<digest>.tmp` here and renamed into place when complete (`PublishSpec`).
///
/// With `directory` (the partial directory, opened by the `Downloader` after checking it is a
/// real directory), every open, rename and unlink is relative to it and never follows a link.
import Crypto
import Foundation
import SoakCore

public struct PartialState: Codable, Sendable, Equatable {
    /// Bumped when the layout changes; a state of another version is discarded.
    public static let formatVersion = 1
    public var version = PartialState.formatVersion
    public var key: String
    public var etag: String
    public var size: Int64
    public var partSize: Int64
    public var done: Set<Int>
}

public struct PartialFile: Sendable {
    public static let directoryName = ".soak-partial"
    public let dataPath: String
    public let statePath: String
    /// The file names, in the partial directory.
    public let dataName: String
    public let stateName: String
    public let tempName: String
    /// The partial directory's descriptor, or -1: absolute paths.
    private let directory: Int32

    public init(destination: String, relativePath: String, directory: Int32 = -1) {
        let digest = lowercaseHex(SHA256.hash(data: Array(relativePath.utf8)).prefix(20))
        let base = destination + "/" + Self.directoryName + "/" + digest
        dataPath = base + ".part"
        statePath = base + ".state"
        dataName = digest + ".part"
        stateName = digest + ".state"
        tempName = digest + ".tmp"
        self.directory = directory
    }

    /// Whether `name` is one soak writes in the partial directory only for the length of a run:
    /// a whole object's named temporary file, or a state being replaced. Left behind only by a
    /// crash, never resumed from, removed at the end of the next run.
    public static func isTemporaryName(_ name: String) -> Bool {
        let u = Array(name.utf8)
        let hexDigits = u.prefix(while: { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }).count
        guard hexDigits == 40 else { return false }
        let rest = String(decoding: u[40...], as: UTF8.self)
        return rest == ".tmp" || rest == ".state.tmp"
    }

    /// (directory, name) for `*at` calls: relative to `directory`, or the absolute path.
    private func at(_ name: String, _ path: String) -> (Int32, String) {
        directory >= 0 ? (directory, name) : (AT_FDCWD, path)
    }

    public func loadState() -> PartialState? {
        let (sd, sn) = at(stateName, statePath)
        let fd = openat(sd, sn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let h = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        guard let d = try? h.readToEnd(),
              let s = try? JSONDecoder().decode(PartialState.self, from: d),
              s.version == PartialState.formatVersion else { return nil }
        // Data shorter than what the state claims means the state is not to be trusted.
        var st = stat()
        let (dd, dn) = at(dataName, dataPath)
        guard fstatat(dd, dn, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFREG,
              s.size >= 0, s.partSize > 0 else { return nil }
        var claimed: Int64 = 0
        for part in s.done {
            guard part >= 0 else { return nil }
            let (start, overflow) = Int64(part).multipliedReportingOverflow(by: s.partSize)
            // A part's end, clipped to the object (the last part may be short).
            let end = overflow || start >= s.size ? s.size : start + min(s.partSize, s.size - start)
            claimed = max(claimed, end)
        }
        guard Int64(st.st_size) >= claimed else { return nil }
        return s
    }

    public func saveState(_ s: PartialState) throws {
        let tmp = statePath + ".tmp"
        let (td, tn) = at(stateName + ".tmp", tmp)
        let (sd, sn) = at(stateName, statePath)
        let data = try JSONEncoder().encode(s)
        // A plain write to one fixed temporary name, then one rename: Foundation's createFile
        // writes atomically through a randomly named file of its own, which a kill -9 between
        // its write and its rename leaves behind for good.
        let fd = openat(td, tn, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LocalIOError(errno: errno, operation: "open", path: tmp) }
        defer { close(fd) }
        do {
            try data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in try Syscall.writeAll(fd, buf, path: tmp) }
        } catch let e as LocalIOError {
            throw LocalIOError(errno: e.errno, operation: "write state", path: tmp)
        }
        guard renameat(td, tn, sd, sn) == 0 else { throw LocalIOError(errno: errno, operation: "rename", path: tmp) }
    }

    public func discard() {
        for (name, path) in [(dataName, dataPath), (stateName, statePath), (stateName + ".tmp", statePath + ".tmp")] {
            let (d, n) = at(name, path)
            unlinkat(d, n, 0)
        }
    }

    /// Removes the state file (its object is complete).
    public func removeState() {
        let (d, n) = at(stateName, statePath)
        unlinkat(d, n, 0)
    }
}
