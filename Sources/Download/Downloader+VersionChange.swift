/// `Downloader`: the end of an object's version after a 412 on If-Match and HEAD's answer.
///
/// The completion of the order that got the 412 records the step (`ObjectTask.settle`) and takes
/// back the object's orders no worker has yet; the step is applied once the last order still
/// out is in, so no byte of the old version can land in a file the new version uses.
import Engine
import Foundation
import S3
import Synchronization

extension Downloader {
    /// Applies an object's step once none of its orders is out: the new version starts from
    /// scratch (its old partial discarded), or the key fails with one line (its partial, of a
    /// version that is no more, discarded).
    func settle(_ tag: Int) {
        guard let t = work.withLock({ $0.tasks[tag] }), let step = t.settle else { return }
        switch step {
        case .refetch(let now):
            if let engine {
                work.withLock { $0.bytesAlreadyDone -= t.countedBytes }
                startObject(now, t.path, engine: engine, replacing: (t.info, t.versionChanges + 1))
            }
        case .fail(let reason):
            t.partial.discard()
            work.withLock { $0.summary.failures.append(DownloadFailure(key: t.info.key, reason: reason)) }
        }
        // Only now: the new version (if any) is open, so `open` never passes through zero.
        work.withLock { w in
            w.tasks[tag] = nil
            w.open -= 1
        }
        signal()
    }
}
