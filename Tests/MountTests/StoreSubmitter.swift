import Cache
import Foundation
@testable import Prefetcher
import S3
import SoakCore

/// A minimal `FetchSubmitter` for the mount's miss path: each fetch is a ranged GET (with
/// If-Match) from an `ObjectStore`, written into the file at `fileOffset`, reported with a
/// CRC32C per block to the filler. It stands in for the worker pool until the in-process
/// `StoreTransport` replaces it.
final class StoreSubmitter: FetchSubmitter, @unchecked Sendable {
    // @unchecked: counters are guarded by `lock`; `filler` is set once before any fetch.
    let store: ObjectStore
    weak var filler: CacheFiller?
    private let lock = NSLock()
    private var nextID = 0
    private let queue = DispatchQueue(label: "soak.test.fetch", attributes: .concurrent)

    init(store: ObjectStore) { self.store = store }

    /// Fetches submitted so far.
    var submitted: Int { lock.lock(); defer { lock.unlock() }; return nextID }

    func submit(bucket: String, key: String, etag: String?, range: ClosedRange<Int64>, path: String, fileOffset: Int64,
                publish: PublishSpec?, blockSize: Int64?, lane: Lane, tag: Int) -> Int {
        lock.lock(); nextID += 1; let id = nextID; lock.unlock()
        queue.async { [self] in
            var data: [UInt8] = []
            var failure: S3Error?
            do {
                _ = try store.get(bucket: bucket, key: key, range: range, ifMatch: etag) { data += $0 }
            } catch let e as S3Error {
                failure = e
            } catch {
                failure = S3Error(kind: .localIO(errno: EIO), operation: "GetObject", bucket: bucket, key: key, message: "\(error)")
            }
            var crcs: [UInt32] = []
            if failure == nil {
                let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
                _ = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(fileOffset)) }
                close(fd)
                let bs = Int(blockSize ?? Int64(max(1, data.count)))
                crcs = stride(from: 0, to: data.count, by: bs).map { CRC32C.checksum(Array(data[$0..<min(data.count, $0 + bs)])) }
            }
            let order = FetchOrder(id: id, bucket: bucket, key: key, etag: etag, start: range.lowerBound, end: range.upperBound,
                                   path: path, fileOffset: fileOffset)
            filler?.completed(FetchCompletion(order: order, tag: tag, error: failure, crcs: crcs))
        }
        return id
    }

    func promote(_ id: Int, to lane: Lane) -> Bool { true }
    func withdraw(_ id: Int) -> Bool { false }
}
