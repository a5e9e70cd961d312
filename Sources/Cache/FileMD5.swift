/// MD5s of cache data files, for checking complete single-part objects against their ETag.
import Crypto
import Foundation
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

public enum FileMD5 {
    /// Bytes read from each file per round of `of(files:)`: 2 MiB of buffers for sixteen
    /// files, the size of a core's L2 here.
    static let laneChunk = 128 << 10

    /// MD5s of data files' first `size` bytes (nil for a file that could not be read whole).
    /// Several files are hashed side by side in `MD5Lanes`, a chunk of each per round, which is
    /// much faster than one after the other (docs/BENCHMARKS.md, `soak __bench-md5`). One file
    /// goes through the one-stream MD5, which is faster than a lone lane.
    public static func of(files: [(path: String, size: Int64)]) -> [String?] {
        precondition(files.count <= MD5Lanes.width)
        if files.count == 1 { return [of(path: files[0].path, size: files[0].size)] }
        let chunk = laneChunk
        let fds = files.map { open($0.path, O_RDONLY | O_CLOEXEC) }
        defer { for fd in fds where fd >= 0 { close(fd) } }
        var ok = fds.map { $0 >= 0 }
        var offsets = [Int64](repeating: 0, count: files.count)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk * files.count, alignment: 64)
        defer { buf.deallocate() }
        let lanes = MD5Lanes()
        while true {
            var input = [UnsafeRawBufferPointer](repeating: UnsafeRawBufferPointer(start: nil, count: 0), count: files.count)
            var any = false
            for i in files.indices where ok[i] && offsets[i] < files[i].size {
                let want = Int(min(Int64(chunk), files[i].size - offsets[i]))
                let p = buf.baseAddress! + i * chunk
                guard readsFully(fds[i], p, want, at: offsets[i]) else { ok[i] = false; continue }
                input[i] = UnsafeRawBufferPointer(start: p, count: want)
                offsets[i] += Int64(want)
                any = true
            }
            guard any else { break }
            lanes.update(input)
        }
        return files.indices.map { ok[$0] ? lowercaseHex(lanes.digest(lane: $0)) : nil }
    }

    /// Reads exactly `count` bytes at `offset`; false on an error or an early end of file.
    private static func readsFully(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ count: Int, at offset: Int64) -> Bool {
        let buf = UnsafeMutableRawBufferPointer(start: p, count: count)
        return (try? Syscall.preadAll(fd, into: buf, at: offset, path: "")) == count
    }

    /// MD5 of a data file's first `size` bytes, read in 1 MiB chunks.
    public static func of(path: String, size: Int64) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var h = Insecure.MD5()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buf.deallocate() }
        var off: Int64 = 0
        while off < size {
            let want = Int(min(Int64(buf.count), size - off))
            guard readsFully(fd, buf.baseAddress!, want, at: off) else { return nil }
            h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buf[0..<want]))
            off += Int64(want)
        }
        return lowercaseHex(h.finalize())
    }
}
