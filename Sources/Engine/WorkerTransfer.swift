import CSys
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

extension WorkerLoop {
    /// One transfer under way: its order, its libcurl handle, its file and what it has written.
    final class Active {
        let order: FetchOrder
        let transfer: CurlTransfer
        let fd: Int32
        let startedAt: Double
        /// Body bytes received (staged or written).
        var written: Int64 = 0
        /// An aligned buffer, from the loop's pool, that fills up before each write; handed back
        /// by `retire`. Swapped for an empty one when a full one goes to the `DirectWriter`.
        var staging: UnsafeMutableRawBufferPointer
        var staged = 0
        /// The file is open with O_DIRECT (switched off for a last, unaligned write).
        var direct = false
        /// Bytes on disk from `fileOffset`: what a retry may resume after.
        var flushed: Int64 = 0
        /// Bytes handed to the `DirectWriter` and not yet written (they follow `flushed`).
        var queued: Int64 = 0
        /// The first failed background write; the next body chunk fails the transfer with it.
        var writeError: LocalIOError?
        /// Block checksums (orders with `blockSize`).
        var digest: BlockDigest
        /// Finished blocks already announced with a `landed` report.
        var announced = 0
        /// A mount read waits on it (urgent or read-ahead lane, or promoted while running).
        var priority = false
        /// Publish orders: where the file goes when complete (its directories are released at the end).
        var target: FilePreparer.Target?
        /// How long the server has left it waiting (see `checkStalls`).
        var watch = StallWatch()
        init(order: FetchOrder, transfer: CurlTransfer, fd: Int32, startedAt: Double, staging: UnsafeMutableRawBufferPointer) {
            self.order = order; self.transfer = transfer; self.fd = fd; self.startedAt = startedAt; self.staging = staging
            self.digest = BlockDigest(blockSize: order.blockSize, length: order.length)
        }
    }
}
