/// CRC32C per block of a block order's body, folded in as the bytes arrive. Shared by every
/// transport (the worker's transfers, `RegionWriter`), so the CRCs a fill commits are computed
/// the same way whichever carried the bytes.
import SoakCore

public struct BlockDigest: Sendable {
    /// nil: no CRCs (a download).
    public let blockSize: Int64?
    /// CRCs of the finished blocks, from the order's start.
    public private(set) var crcs: [UInt32] = []
    private var crc = CRC32C()
    /// Bytes of the block being filled.
    private var fill: Int64 = 0

    /// The order's range cut into blocks (nil without `blockSize`).
    private let ranges: BlockRanges?

    /// CRCs for a range of `length` bytes cut into `blockSize` blocks (none without one).
    public init(blockSize: Int64?, length: Int64) {
        self.blockSize = blockSize
        self.ranges = blockSize.map { BlockRanges(size: length, blockSize: $0) }
    }

    /// Folds received bytes into the per-block CRC32Cs.
    public mutating func add(_ buf: UnsafeRawBufferPointer) {
        guard let bs = blockSize else { return }
        var off = 0
        while off < buf.count {
            let n = min(buf.count - off, Int(bs - fill))
            crc.update(UnsafeRawBufferPointer(rebasing: buf[off..<(off + n)]))
            fill += Int64(n)
            off += n
            if fill == bs {
                crcs.append(crc.value)
                crc = CRC32C()
                fill = 0
            }
        }
    }

    /// Finished blocks wholly in the file, given the bytes on disk from the order's start.
    public func blocks(inFile flushed: Int64) -> Int {
        guard let ranges else { return 0 }
        return min(crcs.count, ranges.wholeBlocks(in: flushed))
    }

    /// CRCs of the blocks wholly on disk; the last, short block counts once every byte of the
    /// range is.
    public func durable(flushed: Int64) -> [UInt32] {
        guard let ranges else { return [] }
        guard flushed >= ranges.size else { return Array(crcs.prefix(blocks(inFile: flushed))) }
        return fill > 0 ? crcs + [crc.value] : crcs
    }
}
