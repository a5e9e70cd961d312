/// Writes a worker's full O_DIRECT staging buffers on a thread of its own.
///
/// How it works. An O_DIRECT `pwrite` returns only when the disk has the bytes
/// (docs/BENCHMARKS.md, write path), and the worker's event loop is one thread: written
/// inline, every write stops all of its transfers. Instead the loop hands a full buffer to
/// `submit`, which queues it and at once returns an empty buffer to fill next, and the writer
/// thread does the writes in order. The loop picks up `completions()` (tag, bytes, errno) to
/// advance what counts as on disk, so a transfer's bytes count only once they are written, in
/// order. It does so on each turn, woken by its sockets or its poll timeout
/// (`WorkerLoop.pollTimeout`), not by the writer: nothing waits on a completion except a
/// finishing transfer, which waits for its writes.
/// (Waking the loop after every write cost two context switches per MiB.)
///
/// Bounded: at most `maxQueued` buffers wait; `submit` blocks the loop while that many do (the
/// disk is then the bottleneck, and waiting is the back-pressure). Buffers cycle between the
/// loop and the writer; the writer allocates one only when none is free, so it owns at most
/// `maxQueued + 1`. After a failed write, the writer drops the rest of that tag's queued writes
/// (as zero-byte completions) so its written bytes stay one contiguous run.
import CSys
import Foundation
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

final class DirectWriter: @unchecked Sendable {  // @unchecked: guarded by `cond`, which waits (no Mutex)
    struct Completion: Equatable {
        var tag: Int
        /// The write's length, written or not.
        var bytes: Int
        /// 0 when every byte was written.
        var errno: Int32
    }

    private struct Job {
        var tag: Int
        var fd: Int32
        var buffer: UnsafeMutableRawBufferPointer
        var count: Int
        var offset: Int64
    }

    let bufferSize: Int
    let alignment: Int
    let maxQueued: Int
    private let cond = NSCondition()
    private var jobs: [Job] = []
    private var done: [Completion] = []
    private var free: [UnsafeMutableRawBufferPointer] = []
    /// Writes queued or running per tag.
    private var pending: [Int: Int] = [:]
    private var failed: Set<Int> = []
    private var stopping = false
    private var thread: Thread?

    init(bufferSize: Int, alignment: Int, maxQueued: Int) {
        self.bufferSize = bufferSize; self.alignment = alignment; self.maxQueued = max(1, maxQueued)
        let t = Thread { self.loop() }  // a cycle until `stop` ends the thread
        t.name = "soak-direct-writer"
        thread = t
        t.start()
    }

    /// Stops the thread after the queued writes; call before dropping the writer.
    func stop() {
        cond.lock()
        stopping = true
        cond.broadcast()
        while thread != nil { cond.wait() }
        for b in free { b.deallocate() }
        free.removeAll()
        cond.unlock()
    }

    /// Queues `count` bytes of `buffer` (which the writer now owns) for `fd` at `offset`, and
    /// returns an empty buffer of `bufferSize` bytes. Waits while `maxQueued` writes are queued.
    func submit(tag: Int, fd: Int32, buffer: UnsafeMutableRawBufferPointer, count: Int, offset: Int64)
        -> UnsafeMutableRawBufferPointer {
        cond.lock()
        defer { cond.unlock() }
        while jobs.count >= maxQueued { cond.wait() }
        jobs.append(Job(tag: tag, fd: fd, buffer: buffer, count: count, offset: offset))
        pending[tag, default: 0] += 1
        cond.broadcast()
        return free.popLast() ?? .allocate(byteCount: bufferSize, alignment: alignment)
    }

    /// Writes finished since the last call, in the order they were done.
    func completions() -> [Completion] {
        cond.lock()
        defer { cond.unlock() }
        let d = done
        done.removeAll(keepingCapacity: true)
        return d
    }

    /// Waits until no write of `tag` is queued or running.
    func waitUntilWritten(tag: Int) {
        cond.lock()
        while pending[tag] != nil { cond.wait() }
        cond.unlock()
    }

    /// Forgets a finished tag's failure (its tag may not come back, but the set stays small).
    func forget(tag: Int) {
        cond.lock()
        failed.remove(tag)
        cond.unlock()
    }

    private func loop() {
        cond.lock()
        while true {
            while jobs.isEmpty && !stopping { cond.wait() }
            if jobs.isEmpty { break }
            let j = jobs.removeFirst()
            let skip = failed.contains(j.tag)
            cond.unlock()
            var direct = true
            var err: Int32 = skip ? ECANCELED : 0
            if !skip {
                let buf = UnsafeRawBufferPointer(start: j.buffer.baseAddress!, count: j.count)
                do { try Self.pwriteAll(j.fd, buf, at: j.offset, direct: &direct, path: "") } catch { err = error.errno }
            }
            cond.lock()
            if err != 0 { failed.insert(j.tag) }
            done.append(Completion(tag: j.tag, bytes: j.count, errno: err))
            free.append(j.buffer)
            if let n = pending[j.tag], n > 1 { pending[j.tag] = n - 1 } else { pending[j.tag] = nil }
            cond.broadcast()
        }
        thread = nil
        cond.broadcast()
        cond.unlock()
    }

    /// Writes all of `buf` at `offset` (`Syscall.pwriteAll`). While `direct`, a write that
    /// O_DIRECT refuses (EINVAL: unaligned, or a filesystem without it) switches the descriptor
    /// to the page cache, clears `direct` and is retried whole: rewriting the same bytes at the
    /// same place is harmless, and keeps the retry in `Syscall`.
    static func pwriteAll(_ fd: Int32, _ buf: UnsafeRawBufferPointer, at offset: Int64, direct: inout Bool,
                          path: String) throws(LocalIOError) {
        do throws(LocalIOError) {
            try Syscall.pwriteAll(fd, buf, at: offset, path: path)
        } catch where error.errno == EINVAL && direct {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~csys_o_direct())
            direct = false
            try Syscall.pwriteAll(fd, buf, at: offset, path: path)
        }
    }
}
