/// `Downloader`: the end of an object's version after a 412 on If-Match and HEAD's answer.
///
/// The completion of the order that got the 412 records the step (`ObjectTask.settle`) and takes
/// back the object's orders no worker has yet; the step is applied once the last order still
/// out is in, so no byte of the old version can land in a file the new version uses.
import Engine
import Foundation
import S3

extension Downloader {
    /// Applies an object's step once none of its orders is out: the new version starts from
    /// scratch (its old partial discarded), or the key fails with one line (its partial, of a
    /// version that is no more, discarded).
    func settle(_ tag: Int) {
        lock.lock()
        guard let t = tasks[tag], let step = t.settle else { lock.unlock(); return }
        lock.unlock()
        switch step {
        case .refetch(let now):
            if let engine {
                lock.lock(); bytesAlreadyDone -= t.countedBytes; lock.unlock()
                startObject(now, t.path, engine: engine, replacing: (t.info, t.versionChanges + 1))
            }
        case .fail(let reason):
            t.partial.discard()
            lock.lock(); summary.failures.append(DownloadFailure(key: t.info.key, reason: reason)); lock.unlock()
        }
        // Only now: the new version (if any) is open, so `open` never passes through zero.
        lock.lock()
        tasks[tag] = nil
        open -= 1
        lock.unlock()
        signal()
    }
}
