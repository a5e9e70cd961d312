import S3

/// What `CacheFiller` needs from the engine (a fake one in unit tests).
public protocol FetchSubmitter: AnyObject, Sendable {
    func submit(bucket: String, key: String, etag: String?, range: ClosedRange<Int64>, path: String,
                fileOffset: Int64, publish: PublishSpec?, blockSize: Int64?, lane: Lane, tag: Int) -> Int
    @discardableResult func promote(_ id: Int, to lane: Lane) -> Bool
    /// Takes back a fetch that no worker has yet; false if it is already under way (or unknown).
    func withdraw(_ id: Int) -> Bool
}

extension FetchEngine: FetchSubmitter {}
