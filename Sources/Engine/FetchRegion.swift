/// How an order's attempt ends, the same for every transport: every byte of the range arrived
/// (else a short body), a download is published under its name (`FetchTargets.publish`), the
/// file is closed, and local failures become the order's error with their errno. The worker's
/// transfers and `RegionWriter` both end here, so a fake transport cannot drift from the worker.
import Foundation
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

public enum FetchRegion {
    /// Refuses bytes beyond the ordered range (`written` already in it).
    public static func checkRoom(_ o: FetchOrder, written: Int64, adding n: Int) throws {
        guard Int64(n) <= o.length - written else {
            throw LocalIOError(errno: EOVERFLOW, operation: "body longer than the requested range", path: o.path)
        }
    }

    /// A local failure (open, write, publish) as the order's error, with its errno.
    public static func localError(_ o: FetchOrder, _ error: Error) -> S3Error {
        S3Error(kind: .localIO(errno: FetchTargets.errnoOf(error)), operation: "GetObject", bucket: o.bucket,
                key: o.key, message: "\(error)")
    }

    /// The report of an order whose target could not be opened (`target.fd` is -1).
    public static func openFailed(_ o: FetchOrder, _ target: FetchTarget) -> FetchReport {
        let message = target.failure
            ?? LocalIOError(errno: target.errno, operation: "open", path: o.publish?.finalPath ?? o.path).description
        return FetchReport(id: o.id, bytes: 0, error: S3Error(kind: .localIO(errno: target.errno), operation: "GetObject",
                                                              bucket: o.bucket, key: o.key, message: message),
                           firstByteLatency: nil)
    }

    /// Ends an attempt whose body is in the file (`received` bytes of it; `status` the HTTP
    /// status, for messages): checks the length, publishes a download, closes `fd` and releases
    /// `target`'s directories (removing a named temporary file that was not published).
    /// Returns the attempt's error: `error`, else the first that these steps met.
    public static func complete(_ o: FetchOrder, target: FetchTarget?, fd: Int32, error: S3Error?, received: Int64,
                                status: Int) -> S3Error? {
        var err = error
        if err == nil && received != o.length {
            err = S3Error(kind: .shortBody(expected: o.length, got: received), operation: "GetObject",
                          bucket: o.bucket, key: o.key, status: status, message: "got \(received) of \(o.length) bytes")
        }
        var published = false
        if err == nil, let p = o.publish, let target {
            do {
                try FetchTargets.publish(target, p, order: o)
                published = true
            } catch {
                err = localError(o, error)
            }
        }
        close(fd)
        target?.releaseDirectories(published: published)
        return err
    }
}

/// Writes one order's body into its file region as it arrives, for transports that run in
/// this process (`StoreTransport`): the target opened as the worker opens it, each chunk written
/// at once at `fileOffset` (no staging), block CRCs folded in, and the attempt ended by
/// `FetchRegion.complete`. O_DIRECT is honoured as far as `pwrite` allows (an unaligned write
/// switches it off), without the worker's aligned staging buffers and writer thread.
public final class RegionWriter {
    public let order: FetchOrder
    private let target: FetchTarget
    private var direct: Bool
    /// Bytes in the file, contiguous from the order's start.
    public private(set) var written: Int64 = 0
    private var digest: BlockDigest
    /// Finished blocks already returned by `landed`.
    private var announced = 0
    private var ended = false

    /// Opens `order`'s target; if that failed, `openFailure` is the order's report.
    public init(order: FetchOrder) {
        self.order = order
        self.target = FetchTargets.open(order)
        self.direct = target.direct
        self.digest = BlockDigest(blockSize: order.blockSize, length: order.length)
    }

    public var openFailure: FetchReport? {
        target.fd < 0 ? FetchRegion.openFailed(order, target) : nil
    }

    /// Writes the next chunk of the body at its place.
    public func write(_ buf: UnsafeRawBufferPointer) throws {
        try FetchRegion.checkRoom(order, written: written, adding: buf.count)
        guard buf.count > 0 else { return }
        digest.add(buf)
        try DirectWriter.pwriteAll(target.fd, buf, at: order.fileOffset + written, direct: &direct, path: order.path)
        written += Int64(buf.count)
    }

    /// Blocks finished since the last call, as a `landed` event would carry them.
    public func landed() -> (first: Int, crcs: [UInt32])? {
        let ready = digest.blocks(inFile: written)
        guard ready > announced else { return nil }
        defer { announced = ready }
        return (announced, Array(digest.crcs[announced..<ready]))
    }

    /// Ends the attempt (`error` from the source, if any) and returns its report.
    public func finish(error: S3Error?, status: Int, firstByteLatency: Double?) -> FetchReport {
        ended = true
        let err = FetchRegion.complete(order, target: order.publish == nil ? nil : target, fd: target.fd,
                                       error: error, received: written, status: status)
        return FetchReport(id: order.id, bytes: written, error: err, firstByteLatency: firstByteLatency,
                           crcs: digest.durable(flushed: written))
    }

    /// Abandons the attempt (cancelled): closes the file and removes a named temporary file.
    public func abandon() {
        guard !ended else { return }
        ended = true
        target.release()
    }
}
