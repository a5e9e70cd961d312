/// A download in progress: data under a temporary name plus a small state file saying which
/// parts are complete, both in `DEST/.soak-partial/`.
///
/// Names are a hash of the relative path, so hostile keys never shape temporary paths. The
/// state file is replaced atomically (write to a temp name, rename) after each part lands, and
/// a part is only recorded after its worker reported every byte written; after a kill -9 the
/// state therefore never claims bytes that are not in the data file. A state whose ETag or size
/// differs from the current listing is discarded together with its data.
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

    public init(destination: String, relativePath: String) {
        let digest = lowercaseHex(SHA256.hash(data: Array(relativePath.utf8)).prefix(20))
        let base = destination + "/" + Self.directoryName + "/" + digest
        dataPath = base + ".part"
        statePath = base + ".state"
    }

    public func loadState() -> PartialState? {
        guard let d = FileManager.default.contents(atPath: statePath),
              let s = try? JSONDecoder().decode(PartialState.self, from: d),
              s.version == PartialState.formatVersion else { return nil }
        // Data shorter than what the state claims means the state is not to be trusted.
        var st = stat()
        guard stat(dataPath, &st) == 0, s.size >= 0, s.partSize > 0 else { return nil }
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
        let data = try JSONEncoder().encode(s)
        // A plain write to one fixed temporary name, then one rename: Foundation's createFile
        // writes atomically through a randomly named file of its own, which a kill -9 between
        // its write and its rename leaves behind for good.
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LocalIOError(errno: errno, operation: "open", path: tmp) }
        defer { close(fd) }
        var done = 0
        try data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            while done < buf.count {
                let n = write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw LocalIOError(errno: n < 0 ? errno : EIO, operation: "write state", path: tmp) }
                done += n
            }
        }
        guard rename(tmp, statePath) == 0 else { throw LocalIOError(errno: errno, operation: "rename", path: tmp) }
    }

    public func discard() {
        unlink(dataPath)
        unlink(statePath)
        unlink(statePath + ".tmp")
    }
}
