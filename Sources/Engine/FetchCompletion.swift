import S3

/// What callers see of one finished fetch.
public struct FetchCompletion: Sendable {
    public var order: FetchOrder
    public var tag: Int
    /// nil on success: every byte of the range was written.
    public var error: S3Error?
    /// Block orders: CRC32C of every block written, in order from the range start (on failure,
    /// of the blocks that did land).
    public var crcs: [UInt32] = []
    /// After a 412 on If-Match, what HEAD said (set when the engine has a `versionCheck`).
    public var version: VersionAnswer? = nil
}
