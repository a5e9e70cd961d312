/// How a worker's transfers write their bodies: staging buffers, `pwrite` or the `DirectWriter`,
/// and the CRCs of the blocks written.
import CSys
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

extension WorkerLoop {
    /// The loop's `DirectWriter`, started on first use.
    func directWriter() -> DirectWriter {
        if let w = writer { return w }
        let w = DirectWriter(bufferSize: Self.directStagingSize, alignment: Self.directAlignment,
                             maxQueued: Self.maxQueuedDirectWrites)
        writer = w
        return w
    }

    /// Announces blocks as soon as they are in the file, so waiting readers get them at once
    /// (a block ends on a staging-buffer boundary).
    func announce(_ a: Active) throws {
        let ready = WorkerLoop.writtenBlocks(a)
        if ready > a.announced {
            try send(.landed(id: a.order.id, first: a.announced, crcs: Array(a.digest.crcs[a.announced..<ready])))
            a.announced = ready
        }
    }

    /// Applies the background writes done since the last call to their transfers.
    func collectWrites() {
        guard let w = writer else { return }
        for c in w.completions() {
            guard let a = active[c.tag] ?? finishing[c.tag] else { continue }
            a.queued -= Int64(c.bytes)
            if c.errno != 0 {
                if a.writeError == nil {
                    a.writeError = LocalIOError(errno: c.errno, operation: "pwrite", path: a.order.path)
                }
                continue
            }
            if a.writeError == nil { a.flushed += Int64(c.bytes) }
            if active[c.tag] != nil { try? announce(a) }
        }
    }

    /// Waits for `a`'s background writes and applies them.
    func settleWrites(_ a: Active) {
        guard let w = writer else { return }
        finishing[a.order.id] = a
        w.waitUntilWritten(tag: a.order.id)
        collectWrites()
        finishing[a.order.id] = nil
        w.forget(tag: a.order.id)
    }

    /// pwrite a body chunk at its place; refuses bytes beyond the ordered range. With `writer`,
    /// full buffers of an O_DIRECT file are written in the background.
    static func write(_ a: Active, _ buf: UnsafeRawBufferPointer, writer: DirectWriter? = nil) throws {
        if let e = a.writeError { throw e }
        try FetchRegion.checkRoom(a.order, written: a.written, adding: buf.count)
        a.digest.add(buf)
        var off = 0
        while off < buf.count {
            let st = a.staging
            let n = min(buf.count - off, st.count - a.staged)
            (st.baseAddress! + a.staged).copyMemory(from: buf.baseAddress! + off, byteCount: n)
            a.staged += n; off += n; a.written += Int64(n)
            if a.staged == st.count {
                if let w = writer, a.direct {
                    a.staging = w.submit(tag: a.order.id, fd: a.fd, buffer: st, count: a.staged,
                                         offset: a.order.fileOffset + a.flushed + a.queued)
                    a.queued += Int64(a.staged)
                    a.staged = 0
                } else {
                    try flushStaging(a)
                }
            }
        }
    }

    /// Finished blocks wholly in the file.
    static func writtenBlocks(_ a: Active) -> Int { a.digest.blocks(inFile: a.flushed) }

    /// CRCs of the blocks that are wholly on disk (the last, short block counts once the whole
    /// range is).
    static func durableCRCs(_ a: Active) -> [UInt32] { a.digest.durable(flushed: a.flushed) }

    /// Writes what is staged. Only the last write of a range may be unaligned; O_DIRECT is then
    /// switched off for it.
    static func flushStaging(_ a: Active) throws {
        guard a.staged > 0 else { return }
        let st = a.staging
        if a.direct && a.staged % directAlignment != 0 {
            _ = fcntl(a.fd, F_SETFL, fcntl(a.fd, F_GETFL) & ~csys_o_direct())
            a.direct = false
        }
        try DirectWriter.pwriteAll(a.fd, UnsafeRawBufferPointer(start: st.baseAddress!, count: a.staged),
                                   at: a.order.fileOffset + a.flushed, direct: &a.direct, path: a.order.path)
        a.flushed += Int64(a.staged)
        a.staged = 0
    }
}
