import Foundation

/// Read buffers reused across FUSE requests: the hit path preads into one and replies from
/// it, so a warm read allocates nothing. A request larger than the pool's size gets a buffer
/// of its own.
final class BufferPool: @unchecked Sendable {
    // @unchecked: `free` is guarded by `lock`.
    let size: Int
    private let lock = NSLock()
    private var free: [UnsafeMutableRawBufferPointer] = []
    /// Buffers kept for reuse; more in use at once are freed when returned (FUSE threads plus
    /// miss replies rarely exceed this).
    static let maxKept = 32

    init(size: Int) { self.size = size }

    deinit { for b in free { b.deallocate() } }

    /// Runs `body` with a buffer of exactly `count` bytes.
    func with<T>(_ count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> T) throws -> T {
        if count > size {
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 4096)
            defer { b.deallocate() }
            return try body(b)
        }
        lock.lock()
        let b = free.popLast() ?? UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        lock.unlock()
        defer {
            lock.lock()
            if free.count < Self.maxKept { free.append(b) } else { b.deallocate() }
            lock.unlock()
        }
        return try body(UnsafeMutableRawBufferPointer(rebasing: b[0..<count]))
    }
}
