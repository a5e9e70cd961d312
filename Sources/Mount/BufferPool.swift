import Foundation
import Synchronization

/// Read buffers reused across FUSE requests: the hit path preads into one and the bridge replies
/// from it, so a warm read allocates only the small `ReadBuffer` handle. A request larger than
/// the pool's size gets a buffer of its own.
public final class BufferPool: Sendable {
    let size: Int
    /// The free buffers (each `size` bytes), by base address: a pooled buffer belongs to no one
    /// until `take` hands it out, and an address, unlike a raw pointer, is `Sendable`, so the
    /// compiler checks that only the lock reaches the list.
    private let free = Mutex<[UInt]>([])
    /// Buffers kept for reuse; more in use at once are freed when returned (FUSE threads plus
    /// miss replies rarely exceed this).
    static let maxKept = 32

    init(size: Int) { self.size = size }

    deinit { free.withLock { for a in $0 { Self.buffer(at: a, size).deallocate() } } }

    private static func buffer(at address: UInt, _ size: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: address), count: size)
    }

    /// A buffer of exactly `count` bytes, back in the pool when the returned handle goes.
    func take(_ count: Int) -> ReadBuffer {
        guard count > 0 else { return .empty }
        if count > size {
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 4096)
            return ReadBuffer(storage: b, count: count, pool: nil, owned: true)
        }
        let b = free.withLock { $0.popLast() }.map { Self.buffer(at: $0, size) }
            ?? UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        return ReadBuffer(storage: b, count: count, pool: self, owned: false)
    }

    /// Takes a buffer back (from `ReadBuffer`'s deinit).
    func put(_ b: UnsafeMutableRawBufferPointer) {
        let address = UInt(bitPattern: b.baseAddress)
        let kept = free.withLock { free in
            guard free.count < Self.maxKept else { return false }
            free.append(address)
            return true
        }
        if !kept { b.deallocate() }
    }

    /// Buffers waiting for reuse now.
    var idle: Int { free.withLock { $0.count } }
}
