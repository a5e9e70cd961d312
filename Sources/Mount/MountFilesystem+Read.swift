/// The read path of `MountFilesystem`: hits served from the open file's data file, misses
/// fetched urgently through `CacheFiller`, and read-ahead for sequential readers (within a file
/// and across the files of a directory read in order).
import Cache
import Engine
import Foundation
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

extension MountFilesystem {
    /// If the file before `ino` in its directory was opened recently, the reader is going
    /// through the directory in order: fetch the start of the next files in the read-ahead lane.
    func readAheadInDirectory(opened ino: UInt64) {
        guard readAheadBlocks > 0, let parent = namespace.entry(ino)?.parent else { return }
        let (previous, next) = namespace.neighbors(ino, following: Self.directoryReadAheadFiles,
                                                   preceding: Self.inOrderRun)
        lock.lock()
        var recent = recentOpens[parent] ?? []
        // The files before it were all opened recently (fewer at the start of a directory).
        let inOrder = !previous.isEmpty && previous.allSatisfy { recent.contains($0) }
        recent.append(ino)
        if recent.count > Self.recentOpensPerDirectory { recent.removeFirst(recent.count - Self.recentOpensPerDirectory) }
        recentOpens[parent] = recent
        if recentOpens.count > 1024 { recentOpens = [parent: recent] }  // bound: directories long done
        // The next files' first blocks, up to `readAheadBlocks` in all (those asked for before
        // count too, so the window slides instead of growing).
        let bs = cache.blockSize
        var ahead: [(object: CachedObject, blocks: Int)] = []
        var budget = readAheadBlocks
        if inOrder {
            for e in next where budget > 0 {
                guard let o = e.object, o.size > 0 else { continue }
                let count = o.blockCount(blockSize: bs)
                let n = BlockRanges.withoutSmallTail(min(count, budget), of: count, window: readAheadBlocks)
                budget -= n
                guard !recentlyAhead.contains(e.ino) else { continue }
                recentlyAhead.append(e.ino)
                ahead.append((o, n))
            }
            if recentlyAhead.count > Self.recentlyAheadLimit { recentlyAhead.removeFirst(recentlyAhead.count - Self.recentlyAheadLimit) }
        }
        lock.unlock()
        for (o, n) in ahead {
            // The index row has the current generation (as in `finishOpen`).
            let row = ((try? cache.object(id: o.id)) ?? nil).flatMap { $0.etag == o.etag ? $0 : nil } ?? o
            if row.isComplete {
                // Already cached: start reading its first blocks from disk now, so the reader's
                // first requests there do not wait on the disk.
                guard let fd = (try? cache.openData(row)) ?? nil else { continue }
                _ = posix_fadvise(fd, 0, off_t(Int64(n) * bs), POSIX_FADV_WILLNEED)
                close(fd)
            } else {
                // Blocks present or already on their way are not fetched again (`CacheFiller`).
                filler.fill(row, bucket: bucket, blocks: Array(0..<n), lane: .readAhead, runBlocks: readAheadRun) { _, _ in }
            }
        }
    }

    /// The open file's object and data-file descriptor (opened on first use), held until
    /// `endUse`; nil fd if the object has no data file yet.
    private func beginUse(_ fh: UInt64) -> (OpenFile, Int32)? {
        lock.lock()
        guard let h = handles[fh] else { lock.unlock(); return nil }
        h.users += 1
        var fd = h.fd
        let o = h.object
        lock.unlock()
        if fd < 0, let opened = try? cache.openData(o) {
            lock.lock()
            if h.fd < 0 && h.object.gen == o.gen { h.fd = opened; fd = opened } else { close(opened); fd = h.fd }
            lock.unlock()
        }
        return (h, fd)
    }

    private func endUse(_ h: OpenFile) {
        lock.lock()
        h.users -= 1
        var fd: Int32 = -1
        if h.released && h.users == 0 { fd = h.fd; h.fd = -1 }
        lock.unlock()
        if fd >= 0 { close(fd) }
    }

    public func read(ino: UInt64, fh: UInt64, size: Int, offset: Int64, done: @escaping FSCompletion) {
        guard let (h, fd) = beginUse(fh) else { return done(.failure(.badHandle(fh))) }
        defer { endUse(h) }
        let o = h.object
        guard offset < o.size, size > 0 else { return done(.success(.data(.empty))) }
        let count = Int(min(Int64(size), o.size - offset))
        let t0 = MonotonicTime.now()
        let ahead = readAheadWindow(h, offset: offset, count: count)
        if fd >= 0 {
            let buf = buffers.take(count)
            let served: Int?
            do { served = try cache.read(o, offset: offset, into: buf.writable, fd: fd) } catch {
                let e = FSError(error)
                logger.error("read \(o.key) at \(offset): \(e)")
                return done(.failure(e))
            }
            if let served {
                buf.truncate(to: served)
                done(.success(.data(buf)))
                if let ahead {
                    filler.fill(o, bucket: bucket, blocks: Array(ahead), lane: .readAhead, runBlocks: readAheadRun) { _, _ in }
                }
                record(hit: true)
                readObserver?(MonotonicTime.now() - t0, true, served)
                return
            }
        }
        record(hit: false)
        miss(h, offset: offset, count: count, ahead: ahead, t0: t0, done: OnceCompletion(done))
    }

    /// Fetches the blocks under a read urgently and completes when they land (or fail, or the
    /// deadline passes).
    private func miss(_ h: OpenFile, offset: Int64, count: Int, ahead: ClosedRange<Int>?, t0: Double, done once: OnceCompletion) {
        let o = h.object
        let bs = cache.blockSize
        let blocks = Array(o.blocks(blockSize: bs).blocks(offset: offset, count: count))
        if let ahead {
            // One request for the read's blocks and the window after them (urgent: the reader is
            // waiting on its start); the reply below waits only for the read's own blocks.
            filler.fill(o, bucket: bucket, blocks: blocks + Array(ahead), lane: .urgent, runBlocks: readAheadRun) { _, _ in }
        }
        // A reader stuck in the kernel is the worst failure a mount has: whatever happens to
        // the fetch, the read is answered (EIO) after `missDeadline`.
        let deadline = Self.missDeadline
        replies.asyncAfter(deadline: .now() + deadline) { [logger] in
            let e = FSError(.io, "read \(PathError.printable(o.key)) at \(offset) got no data within \(Int(deadline)) s")
            if once(.failure(e)) { logger.error("\(e); answered EIO") }
        }
        let ino = h.ino
        filler.fill(o, bucket: bucket, blocks: blocks, lane: .urgent, whenLanded: true) { [self] _, err in
            let landed = MonotonicTime.now()
            if let err {
                logger.warning("read \(PathError.printable(o.key)) at \(offset) failed: \(err)")
                var e = FSError(err)
                // Blocks refused because this version's data was dropped meanwhile (the object
                // changed under another fetch of it): the same as a 412 here.
                if case .evicted = err, versionDropped(o) { e = .stale(PathError.printable(o.key)) }
                if e.kind == .stale { namespace.markStale(ino) }  // the next open sees the new version
                once(.failure(e))
                return
            }
            // Off the committer thread: the pread and reply, through a descriptor of its own
            // (the open file may be released meanwhile).
            replies.async { [self] in
                var n: Int? = nil
                let fd = (try? cache.openData(o)) ?? nil
                let buf = buffers.take(count)
                if let fd { n = try? cache.read(o, offset: offset, into: buf.writable, fd: fd) }
                if let fd { close(fd) }
                if let n {
                    buf.truncate(to: n)
                    once(.success(.data(buf)))
                } else if versionDropped(o) {
                    // This version's data went meanwhile because the object changed (a 412 on
                    // another fetch of it: its generation moved on): ESTALE, and the next open
                    // sees the new version.
                    namespace.markStale(ino)
                    once(.failure(.stale(PathError.printable(o.key))))
                } else {
                    // Evicted or corrupt again at once: EIO, and the reader may retry.
                    once(.failure(FSError(.io, "read \(PathError.printable(o.key)) at \(offset): its blocks went before they could be read")))
                }
                let end = MonotonicTime.now()
                logger.debug("miss \(PathError.printable(o.key)) at \(offset): \(Int((end - t0) * 1000)) ms (blocks landed after \(Int((landed - t0) * 1000)) ms)")
                readObserver?(end - t0, false, n ?? 0)
            }
        }
    }

    /// Whether the data of `o`'s version is gone from the index (its row replaced, or moved to a
    /// new generation): what an open file sees when the object changed under another fetch.
    private func versionDropped(_ o: CachedObject) -> Bool {
        (try? cache.object(id: o.id)).map { $0?.gen != o.gen } ?? false
    }

    /// A reader continuing where its last read ended (or starting a file with a large read) is
    /// sequential: it should have the next `readAheadBlocks` blocks on their way. Returns the
    /// blocks to ask for now, if the window has drained to half (nil otherwise), and notes them.
    private func readAheadWindow(_ h: OpenFile, offset: Int64, count: Int) -> ClosedRange<Int>? {
        guard readAheadBlocks > 0 else { return nil }
        let bs = cache.blockSize
        lock.lock(); defer { lock.unlock() }
        let blocks = h.object.blocks(blockSize: bs)
        let block = blocks.blocks(offset: offset, count: count).upperBound
        let sequential = offset == h.nextOffset && (offset > 0 || count >= Self.sequentialStartBytes)
        h.nextOffset = offset + Int64(count)
        guard sequential, let window = blocks.readAhead(after: block, requestedUpTo: h.readAheadUpTo,
                                                        window: readAheadBlocks, refill: Self.refillFraction) else { return nil }
        h.readAheadUpTo = window.upperBound
        return window
    }
}
