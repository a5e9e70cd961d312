/// Seeded property tests for `BlockRanges` (see FuzzSupport for `SOAK_FUZZ_SEED` and
/// `SOAK_FUZZ_ITERATIONS`). Each property is checked against a simple model written
/// independently: a byte-by-byte walk, a set of blocks, a block-by-block loop.
import FuzzSupport
import SoakCore
import XCTest

final class BlockRangesTests: XCTestCase {
    /// A block size and an object size around it: empty, one short block, exact multiples, a
    /// byte over, many blocks.
    private func shape(_ g: inout SeededRandom) -> BlockRanges {
        let bs = Int64([1, 2, 3, 7, 16, 4096][Int.random(in: 0..<6, using: &g)])
        let blocks = Int64.random(in: 0...40, using: &g)
        let size = max(0, blocks * bs + Int64.random(in: -1...1, using: &g))
        return BlockRanges(size: size, blockSize: bs)
    }

    /// Block ranges tile the object: in order, without gaps or overlaps, none empty, every one
    /// `blockSize` long but the last.
    func testBlocksTileTheObject() {
        for i in 0..<Fuzz.iterations(500) {
            var g = Fuzz.rng("tile", i)
            let r = shape(&g)
            let ctx = Fuzz.context("tile", i) + " \(r)"
            XCTAssertEqual(Int64(r.blockCount) * r.blockSize >= r.size, true, ctx)
            XCTAssertEqual(r.blockCount == 0, r.size == 0, ctx)
            var next: Int64 = 0
            for b in 0..<r.blockCount {
                let br = r.byteRange(ofBlock: b)
                XCTAssertEqual(br.lowerBound, next, ctx)
                XCTAssertEqual(br.count, b < r.blockCount - 1 ? Int(r.blockSize) : Int(r.size - next), ctx)
                XCTAssertGreaterThan(br.count, 0, ctx)
                next = br.upperBound + 1
            }
            XCTAssertEqual(next, r.size, ctx)
        }
    }

    /// `blocks(offset:count:)` is exactly the set of blocks a byte-by-byte walk touches, and the
    /// bytes of those blocks cover the range.
    func testBlocksCoveringARangeMatchAByteWalk() {
        for i in 0..<Fuzz.iterations(500) {
            var g = Fuzz.rng("cover", i)
            let r = shape(&g)
            guard r.size > 0 else { continue }
            let offset = Int64.random(in: 0..<r.size, using: &g)
            let count = Int.random(in: 1...Int(r.size - offset), using: &g)
            let ctx = Fuzz.context("cover", i) + " \(r) offset \(offset) count \(count)"
            var touched = Set<Int>()
            for byte in offset..<(offset + Int64(count)) {
                touched.insert((0..<r.blockCount).first { r.byteRange(ofBlock: $0).contains(byte) }!)
            }
            let blocks = r.blocks(offset: offset, count: count)
            XCTAssertEqual(Set(blocks), touched, ctx)
            let bytes = r.byteRange(ofBlocks: blocks)
            XCTAssertTrue(bytes.contains(offset) && bytes.contains(offset + Int64(count) - 1), ctx)
        }
    }

    /// `offset(ofBlock:)`, `block(at:)` and `wholeBlocks(in:)` agree with the blocks' byte
    /// ranges: a block starts where its range does, a byte lies in the block that holds it, and
    /// the first `n` bytes hold exactly the blocks whose last byte is among them.
    func testOffsetsAndWholeBlocksMatchTheByteRanges() {
        for i in 0..<Fuzz.iterations(500) {
            var g = Fuzz.rng("offsets", i)
            let r = shape(&g)
            let ctx = Fuzz.context("offsets", i) + " \(r)"
            for b in 0..<r.blockCount {
                XCTAssertEqual(r.offset(ofBlock: b), r.byteRange(ofBlock: b).lowerBound, ctx)
            }
            XCTAssertEqual(r.offset(ofBlock: r.blockCount), r.size, ctx)
            let bytes = Int64.random(in: 0...r.size, using: &g)
            let whole = (0..<r.blockCount).filter { r.byteRange(ofBlock: $0).upperBound < bytes }.count
            XCTAssertEqual(r.wholeBlocks(in: bytes), whole, ctx + " bytes \(bytes)")
            if bytes < r.size {
                XCTAssertTrue(r.byteRange(ofBlock: r.block(at: bytes)).contains(bytes), ctx + " byte \(bytes)")
            }
        }
    }

    func testNoSmallTail() {
        for i in 0..<Fuzz.iterations(500) {
            var g = Fuzz.rng("tail", i)
            let window = Int.random(in: 0...20, using: &g)
            let available = Int.random(in: 0...60, using: &g)
            let n = Int.random(in: 0...available, using: &g)
            let ctx = Fuzz.context("tail", i) + " n \(n) of \(available) window \(window)"
            let got = BlockRanges.withoutSmallTail(n, of: available, window: window)
            XCTAssertTrue(got == n || got == available, ctx)
            // What is left behind is either nothing or more than half a window.
            XCTAssertTrue(got == available || available - got > window / 2, ctx)
            // It grows only by at most half a window.
            XCTAssertLessThanOrEqual(got - n, window / 2, ctx)
        }
    }

    /// Runs partition the blocks into consecutive pieces, in order; none is longer than
    /// `maxRun` plus half of it; a piece follows the one before it directly only when it is
    /// more than half a run long (a small tail went with the one before).
    func testRunsPartitionWithoutSmallTails() {
        for i in 0..<Fuzz.iterations(500) {
            var g = Fuzz.rng("runs", i)
            let maxRun = Int.random(in: 1...12, using: &g)
            let density = Double.random(in: 0.3...1, using: &g)
            let sorted = (0..<Int.random(in: 0...80, using: &g)).filter { _ in Double.random(in: 0..<1, using: &g) < density }
            let ctx = Fuzz.context("runs", i) + " maxRun \(maxRun) \(sorted)"
            let runs = BlockRanges.runs(sorted, maxRun: maxRun)
            XCTAssertEqual(runs.flatMap { Array($0) }, sorted, ctx)
            for (k, run) in runs.enumerated() {
                XCTAssertLessThanOrEqual(run.count, maxRun + maxRun / 2, ctx)
                if k > 0, runs[k - 1].upperBound + 1 == run.lowerBound {
                    XCTAssertEqual(runs[k - 1].count, maxRun, ctx)
                    XCTAssertGreaterThan(run.count, maxRun / 2, ctx)
                }
                // A run stops short of maxRun only where its consecutive blocks stop.
                if run.count < maxRun, let next = sorted.first(where: { $0 > run.upperBound }) {
                    XCTAssertNotEqual(next, run.upperBound + 1, ctx)
                }
            }
        }
    }

    /// The same runs as the loop CacheFiller had before it called `runs` (kept here as the model).
    func testRunsMatchTheFillersLoop() {
        func fillerRuns(_ fresh: [Int], cap: Int) -> [ClosedRange<Int>] {
            var out: [ClosedRange<Int>] = []
            var k = 0
            while k < fresh.count {
                var n = 1
                while k + n < fresh.count, fresh[k + n] == fresh[k] + n, n < cap { n += 1 }
                var tail = 0
                while k + n + tail < fresh.count, fresh[k + n + tail] == fresh[k] + n + tail, tail <= cap / 2 { tail += 1 }
                if tail <= cap / 2 { n += tail }
                out.append(fresh[k]...(fresh[k] + n - 1))
                k += n
            }
            return out
        }
        for i in 0..<Fuzz.iterations(500) {
            var g = Fuzz.rng("filler-runs", i)
            let maxRun = Int.random(in: 1...12, using: &g)
            let sorted = (0..<Int.random(in: 0...80, using: &g)).filter { _ in Int.random(in: 0..<8, using: &g) > 0 }
            XCTAssertEqual(BlockRanges.runs(sorted, maxRun: maxRun), fillerRuns(sorted, cap: maxRun),
                           Fuzz.context("filler-runs", i) + " maxRun \(maxRun) \(sorted)")
        }
    }

    /// A reader moving through an object in reads of random sizes: the read-ahead requests never
    /// overlap, stay inside the object, run ahead of the reader by at most a window (or to the
    /// end, with a small tail), and together reach the last block; none is asked for while more
    /// than the refill share of the window is still ahead.
    func testReadAheadOfASequentialReader() {
        for i in 0..<Fuzz.iterations(300) {
            var g = Fuzz.rng("readahead", i)
            let r = shape(&g)
            guard r.size > 0 else { continue }
            let window = Int.random(in: 1...12, using: &g)
            let refill = Int.random(in: 1...4, using: &g)
            let ctx = Fuzz.context("readahead", i) + " \(r) window \(window) refill \(refill)"
            var upTo = -1
            var offset: Int64 = 0
            var asked = Set<Int>()
            while offset < r.size {
                let count = Int(min(r.size - offset, Int64.random(in: 1...(3 * r.blockSize), using: &g)))
                let block = r.blocks(offset: offset, count: count).upperBound
                offset += Int64(count)
                let ahead = upTo - block
                guard let next = r.readAhead(after: block, requestedUpTo: upTo, window: window, refill: refill) else {
                    continue
                }
                XCTAssertLessThan(ahead, max(1, window / refill), ctx)
                XCTAssertEqual(next.lowerBound, max(block + 1, upTo + 1), ctx)
                XCTAssertLessThan(next.upperBound, r.blockCount, ctx)
                XCTAssertTrue(next.upperBound <= block + window || next.upperBound == r.blockCount - 1, ctx)
                XCTAssertTrue(next.upperBound == r.blockCount - 1 || r.blockCount - 1 - next.upperBound > window / 2, ctx)
                for b in next { XCTAssertTrue(asked.insert(b).inserted, ctx + " block \(b) twice") }
                upTo = next.upperBound
            }
        }
    }

    func testReadAheadIsOffWithoutAWindow() {
        let r = BlockRanges(size: 100, blockSize: 10)
        XCTAssertNil(r.readAhead(after: 0, requestedUpTo: -1, window: 0, refill: 2))
        XCTAssertEqual(r.readAhead(after: 0, requestedUpTo: -1, window: 4, refill: 2), 1...4)
        XCTAssertEqual(r.readAhead(after: 4, requestedUpTo: 4, window: 4, refill: 2), 5...9, "a tail of 1 goes with it")
        XCTAssertNil(r.readAhead(after: 9, requestedUpTo: 9, window: 4, refill: 2))
    }
}
