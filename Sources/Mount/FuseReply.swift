/// What a `FuseHandler` answers: the bridge (`FuseRequest.reply(_:)`) turns it into the libfuse
/// reply. Nothing here knows libfuse, so handlers are tested by looking at their answers.

/// One request's answer, or why it failed.
public typealias FSResult = Result<FuseReply, FSError>

/// Receives the answer of a request that may complete later (an open that revalidates, a read
/// that misses); called exactly once, from any thread.
public typealias FSCompletion = @Sendable (FSResult) -> Void

public enum FuseReply: Sendable {
    /// A name found: its attributes, cached by the kernel (name and attributes) for `ttl`.
    case entry(FuseAttributes, ttl: Double)
    /// No such name, remembered by the kernel for `ttl` (a negative entry).
    case noEntry(ttl: Double)
    case attr(FuseAttributes, ttl: Double)
    /// An open file or directory handle; `keepCache`: the kernel may keep the inode's pages.
    case open(fh: UInt64, keepCache: Bool)
    /// Read bytes, in a pooled buffer that goes back to its pool once the reply is sent.
    case data(ReadBuffer)
    /// Directory entries from index `offset` on (readdir offsets are indexes into the list);
    /// the bridge sends as many as fit the kernel's buffer.
    case directory([DirectoryEntry], offset: Int)
    /// Size in 1 MiB blocks and inode count.
    case statfs(blocks: UInt64, files: UInt64)
    /// Success with nothing to say (release, releasedir).
    case none
}

/// One directory entry as readdir shows it.
public struct DirectoryEntry: Sendable {
    public var name: String
    public var attr: FuseAttributes
}

/// Bytes read for a reply: `bytes` points into a `BufferPool` buffer (or nothing, for an empty
/// read), handed back to the pool when the last reference goes. The hit path preads straight
/// into it and the bridge replies from it: read data is never copied.
public final class ReadBuffer: @unchecked Sendable {  // @unchecked: raw memory, written once before hand-off, then read-only
    public private(set) var bytes: UnsafeRawBufferPointer
    private let storage: UnsafeMutableRawBufferPointer?
    private let pool: BufferPool?
    /// A buffer too large for the pool: freed with this handle.
    private let owned: Bool

    init(storage: UnsafeMutableRawBufferPointer?, count: Int, pool: BufferPool?, owned: Bool = false) {
        self.storage = storage; self.pool = pool; self.owned = owned
        bytes = UnsafeRawBufferPointer(start: storage?.baseAddress, count: storage == nil ? 0 : count)
    }

    /// No bytes (a read at or past the end).
    public static var empty: ReadBuffer { ReadBuffer(storage: nil, count: 0, pool: nil) }

    /// Where the read goes: `bytes.count` bytes.
    var writable: UnsafeMutableRawBufferPointer {
        guard let storage else { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        return UnsafeMutableRawBufferPointer(rebasing: storage[0..<bytes.count])
    }

    /// Keeps the first `n` bytes (a short read).
    func truncate(to n: Int) { bytes = UnsafeRawBufferPointer(rebasing: bytes[0..<min(n, bytes.count)]) }

    deinit {
        guard let storage else { return }
        if owned { storage.deallocate() } else { pool?.put(storage) }
    }
}
