/// The present blocks of one object, packed: a `blockmaps` row holds `CacheFormat.chunkBlocks`
/// consecutive block slots in one blob, 5 bytes per slot (a present flag, then the block's
/// CRC32C little-endian). One row per 32 blocks instead of one per block keeps the index small
/// (format 1 spent about 15 bytes of row and key per block), and reading a range of blocks is
/// one row lookup.
struct BlockMap {
    static let slotBytes = 5

    /// The chunk (row) holding block `index`, and its slot in that chunk.
    static func locate(_ index: Int) -> (chunk: Int64, slot: Int) {
        (Int64(index / CacheFormat.chunkBlocks), index % CacheFormat.chunkBlocks)
    }

    private(set) var slots: [UInt8]

    init(_ blob: [UInt8] = []) {
        // A blob cut mid-slot (never written so) keeps its whole slots only.
        slots = Array(blob.prefix(blob.count - blob.count % Self.slotBytes))
    }

    var blob: [UInt8] { slots }
    var isEmpty: Bool { present.isEmpty }

    func value(slot: Int) -> UInt32? {
        let o = slot * Self.slotBytes
        guard slot >= 0, o + Self.slotBytes <= slots.count, slots[o] == 1 else { return nil }
        return UInt32(slots[o + 1]) | UInt32(slots[o + 2]) << 8 | UInt32(slots[o + 3]) << 16 | UInt32(slots[o + 4]) << 24
    }

    /// Sets a slot; false if it was already present (nothing changes then).
    mutating func set(slot: Int, crc: UInt32) -> Bool {
        guard value(slot: slot) == nil else { return false }
        let o = slot * Self.slotBytes
        if slots.count < o + Self.slotBytes { slots += [UInt8](repeating: 0, count: o + Self.slotBytes - slots.count) }
        slots[o] = 1
        for k in 0..<4 { slots[o + 1 + k] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(k))) }
        return true
    }

    /// Clears a slot; false if it was not present.
    mutating func clear(slot: Int) -> Bool {
        guard value(slot: slot) != nil else { return false }
        let o = slot * Self.slotBytes
        for k in 0..<Self.slotBytes { slots[o + k] = 0 }
        // Trailing empty slots go, so a cleared chunk is an empty blob.
        while slots.count >= Self.slotBytes, slots[slots.count - Self.slotBytes] == 0 {
            slots.removeLast(Self.slotBytes)
        }
        return true
    }

    /// Present slots and their CRCs.
    var present: [(slot: Int, crc: UInt32)] {
        (0..<(slots.count / Self.slotBytes)).compactMap { s in value(slot: s).map { (s, $0) } }
    }
}
