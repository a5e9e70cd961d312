import Foundation

/// Read buffers reused across FUSE requests: the hit path preads into one and the bridge replies
/// from it, so a warm read allocates only the small `ReadBuffer` handle. A request larger than
/// the pool's size gets a buffer of its own.
public final class BufferPool: @unchecked Sendable {
    // @unchecked: `free` is guarded by `lock`.
    let size: Int
    private let lock = NSLock()
    private var free: [UnsafeMutableRawBufferPointer] = []
    /// Buffers kept for reuse; more in use at once are freed when returned (FUSE threads plus
    /// miss replies rarely exceed this).
    static let maxKept = 32

    init(size: Int) { self.size = size }

    deinit { for b in free { b.deallocate() } }

    /// A buffer of exactly `count` bytes, back in the pool when the returned handle goes.
    func take(_ count: Int) -> ReadBuffer {
        guard count > 0 else { return .empty }
        if count > size {
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 4096)
            return ReadBuffer(storage: b, count: count, pool: nil, owned: true)
        }
        lock.lock()
        let b = free.popLast() ?? UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        lock.unlock()
        return ReadBuffer(storage: b, count: count, pool: self, owned: false)
    }

    /// Takes a buffer back (from `ReadBuffer`'s deinit).
    func put(_ b: UnsafeMutableRawBufferPointer) {
        lock.lock()
        if free.count < Self.maxKept { free.append(b); lock.unlock() } else { lock.unlock(); b.deallocate() }
    }
}
