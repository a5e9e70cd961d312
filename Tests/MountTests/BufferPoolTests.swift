/// Read buffers: reused through the pool, a request larger than the pool's size gets a
/// buffer of its own, at most `maxKept` are kept, and concurrent readers never share one.
import Foundation
import Synchronization
import XCTest
@testable import Mount

final class BufferPoolTests: XCTestCase {
    func testEmptyReadsTakeNoBuffer() {
        let pool = BufferPool(size: 4096)
        let b = pool.take(0)
        XCTAssertEqual(b.bytes.count, 0)
        XCTAssertEqual(b.writable.count, 0)
        XCTAssertEqual(pool.idle, 0)
        XCTAssertEqual(ReadBuffer.empty.bytes.count, 0)
    }

    func testABufferComesBackToThePoolAndIsReused() throws {
        let pool = BufferPool(size: 4096)
        var b: ReadBuffer? = pool.take(100)
        let first = try XCTUnwrap(b?.bytes.baseAddress)
        XCTAssertEqual(b?.bytes.count, 100)
        XCTAssertEqual(b?.writable.count, 100)
        XCTAssertEqual(Int(bitPattern: first) % 4096, 0, "page-aligned (O_DIRECT-safe)")
        b?.writable.copyBytes(from: [1, 2, 3])
        XCTAssertEqual(Array(b!.bytes.prefix(3)), [1, 2, 3], "the reply sees what the read wrote: no copy")
        XCTAssertEqual(pool.idle, 0)
        b = nil
        XCTAssertEqual(pool.idle, 1)
        let again = pool.take(4096)
        XCTAssertEqual(again.bytes.baseAddress, first, "the same buffer, taken again")
        XCTAssertEqual(pool.idle, 0)
    }

    func testALargerReadGetsItsOwnBuffer() {
        let pool = BufferPool(size: 4096)
        var big: ReadBuffer? = pool.take(4097)
        XCTAssertEqual(big?.bytes.count, 4097)
        big?.writable.copyBytes(from: [UInt8](repeating: 7, count: 4097))
        XCTAssertEqual(big?.bytes.last, 7)
        big = nil
        XCTAssertEqual(pool.idle, 0, "freed with its handle, never pooled")
    }

    func testAtMostMaxKeptBuffersAreKept() {
        let pool = BufferPool(size: 512)
        var held = (0..<(BufferPool.maxKept + 8)).map { _ in pool.take(512) }
        XCTAssertEqual(Set(held.map { $0.bytes.baseAddress }).count, held.count, "every buffer in use is its own")
        held.removeAll()
        XCTAssertEqual(pool.idle, BufferPool.maxKept)
    }

    func testTruncateKeepsAPrefix() {
        let pool = BufferPool(size: 64)
        let b = pool.take(10)
        b.writable.copyBytes(from: (0..<10).map { UInt8($0) })
        b.truncate(to: 20)
        XCTAssertEqual(b.bytes.count, 10, "never longer than taken")
        b.truncate(to: 4)
        XCTAssertEqual(Array(b.bytes), [0, 1, 2, 3])
        XCTAssertEqual(b.writable.count, 4)
    }

    func testConcurrentReadersNeverShareABuffer() {
        let pool = BufferPool(size: 256)
        let mixed = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for round in 0..<500 {
                let b = pool.take(256)
                let mark = UInt8(truncatingIfNeeded: t * 31 + round)
                b.writable.initializeMemory(as: UInt8.self, repeating: mark)
                if b.bytes.contains(where: { $0 != mark }) { mixed.withLock { $0 += 1 } }
            }
        }
        XCTAssertEqual(mixed.withLock { $0 }, 0)
        XCTAssertLessThanOrEqual(pool.idle, 8)
    }
}
