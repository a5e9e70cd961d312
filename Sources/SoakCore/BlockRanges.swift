/// Block and byte-range arithmetic for an object cut into fixed-size blocks (the last one
/// shorter): which blocks a byte range touches, the bytes of a block, runs of blocks to fetch
/// and read-ahead windows. Pure: no I/O, no state, so it is tested by properties alone.
public struct BlockRanges: Sendable, Hashable {
    /// Object size in bytes.
    public let size: Int64
    public let blockSize: Int64

    public init(size: Int64, blockSize: Int64) {
        precondition(blockSize > 0 && size >= 0, "block size \(blockSize), size \(size)")
        self.size = size; self.blockSize = blockSize
    }

    public var blockCount: Int { Int((size + blockSize - 1) / blockSize) }

    /// Bytes of block `i` (inclusive), clipped to the object.
    public func byteRange(ofBlock i: Int) -> ClosedRange<Int64> {
        let start = Int64(i) * blockSize
        return start...(min(size, start + blockSize) - 1)
    }

    /// Where block `i` starts, clipped to the object (`size` for `blockCount` and beyond).
    public func offset(ofBlock i: Int) -> Int64 {
        precondition(i >= 0, "block \(i)")
        return min(size, Int64(i) * blockSize)
    }

    /// The block holding byte `offset`.
    public func block(at offset: Int64) -> Int {
        precondition(offset >= 0 && offset < size, "offset \(offset) of \(size)")
        return Int(offset / blockSize)
    }

    /// Blocks wholly within the first `bytes` bytes: the last, short block counts once `bytes`
    /// reaches `size`.
    public func wholeBlocks(in bytes: Int64) -> Int {
        precondition(bytes >= 0, "bytes \(bytes)")
        return bytes >= size ? blockCount : Int(bytes / blockSize)
    }

    /// Bytes of blocks `blocks` (inclusive), clipped to the object.
    public func byteRange(ofBlocks blocks: ClosedRange<Int>) -> ClosedRange<Int64> {
        byteRange(ofBlock: blocks.lowerBound).lowerBound...byteRange(ofBlock: blocks.upperBound).upperBound
    }

    /// The blocks holding bytes `offset ..< offset + count` (`count` > 0).
    public func blocks(offset: Int64, count: Int) -> ClosedRange<Int> {
        precondition(count > 0 && offset >= 0, "offset \(offset), count \(count)")
        return Int(offset / blockSize)...Int((offset + Int64(count) - 1) / blockSize)
    }

    /// The "no small tail" rule: a span of `n` blocks out of `available` takes all of them when
    /// what it would leave behind is at most half a `window`. A tail that small is not worth a
    /// request of its own (fewer, larger requests cost the server less per byte), and half a
    /// window bounds how far past the window a span grows.
    public static func withoutSmallTail(_ n: Int, of available: Int, window: Int) -> Int {
        available - n <= window / 2 ? available : n
    }

    /// `sorted` (ascending block indices, no repeats) as runs of consecutive blocks, each up to
    /// `maxRun` blocks plus a tail the no-small-tail rule gives it.
    public static func runs(_ sorted: [Int], maxRun: Int) -> [ClosedRange<Int>] {
        precondition(maxRun > 0)
        var out: [ClosedRange<Int>] = []
        var k = 0
        while k < sorted.count {
            // Consecutive blocks from k, counted no further than the rule can take.
            var available = 1
            while k + available < sorted.count, available < maxRun + maxRun / 2 + 1,
                  sorted[k + available] == sorted[k] + available { available += 1 }
            let n = withoutSmallTail(min(available, maxRun), of: available, window: maxRun)
            out.append(sorted[k]...(sorted[k] + n - 1))
            k += n
        }
        return out
    }

    /// Read-ahead for a sequential reader whose last read ended in block `block`, with blocks up
    /// to `requestedUpTo` already asked for: nothing while more than 1/`refill` of `window` is
    /// still ahead of it (so each request spans at least the rest of the window); then the blocks
    /// after both, up to `window` past the reader, or to the end when only a small tail would be
    /// left. Nil when there is nothing to ask for.
    public func readAhead(after block: Int, requestedUpTo: Int, window: Int, refill: Int) -> ClosedRange<Int>? {
        guard window > 0, blockCount > 0, requestedUpTo - block < max(1, window / refill) else { return nil }
        let lastBlock = blockCount - 1
        let last = min(lastBlock, block + window)
        let end = Self.withoutSmallTail(last, of: lastBlock, window: window)
        let from = max(block + 1, requestedUpTo + 1)
        guard from <= end else { return nil }
        return from...end
    }
}
