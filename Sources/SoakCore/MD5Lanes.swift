import CKernels

/// MD5 of up to sixteen byte streams at once, one stream per SIMD lane of `ck_md5x16`.
///
/// One MD5 is a chain of dependent steps, so a core hashes one stream no faster whatever its
/// vector width; streams in lockstep share each vector instruction, so many lanes multiply the
/// throughput (eight or fewer busy lanes take the eight-lane kernel; figures: see
/// docs/BENCHMARKS.md, hash kernels and encodings). Every
/// lane is an independent RFC 1321 MD5: `update` gives each lane its own bytes (a lane given
/// more runs on while the others idle), `digest(lane:)` pads and finishes one lane. Partial
/// 64-byte blocks wait in a per-lane tail until the next `update` or the digest.
///
/// Used where several whole objects are checked against their ETags at once (the cache's MD5
/// checks); a single stream is faster through swift-crypto's MD5.
public final class MD5Lanes {
    /// Streams hashed side by side.
    public static let width = 16
    /// The builds of the block function, by the instructions they need.
    public enum Build: Int32, CaseIterable, Sendable { case portable = 0, avx2 = 1, avx512 = 2 }
    /// The fastest build this CPU runs.
    public static let best = Build(rawValue: ck_md5_best_build()) ?? .portable
    /// Every build this CPU runs (tests check them against each other).
    public static var supportedBuilds: [Build] { Build.allCases.filter { $0.rawValue <= best.rawValue } }
    private static let blockSize = 64
    private static let initialState: [UInt32] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476]

    /// Word k of lane l at `state[k * width + l]` (the layout `ck_md5x16` takes).
    private var state = [UInt32](repeating: 0, count: 4 * MD5Lanes.width)
    private var counts = [UInt64](repeating: 0, count: MD5Lanes.width)
    private var tailFill = [Int](repeating: 0, count: MD5Lanes.width)
    private let tails = UnsafeMutableRawBufferPointer.allocate(byteCount: MD5Lanes.width * MD5Lanes.blockSize,
                                                               alignment: 64)

    /// Which build of the block function runs.
    private let build: Build

    /// `build` must be one of `supportedBuilds`.
    public init(build: Build = MD5Lanes.best) {
        precondition(build.rawValue <= Self.best.rawValue, "MD5 build \(build) needs instructions this CPU lacks")
        self.build = build
        for l in 0..<Self.width { reset(lane: l) }
    }

    deinit { tails.deallocate() }

    /// Starts lane `l` over as an empty stream.
    public func reset(lane l: Int) {
        for k in 0..<4 { state[k * Self.width + l] = Self.initialState[k] }
        counts[l] = 0
        tailFill[l] = 0
    }

    /// Appends `input[l]` to lane `l`'s stream (lanes past `input.count` get nothing).
    public func update(_ input: [UnsafeRawBufferPointer]) {
        precondition(input.count <= Self.width, "at most \(Self.width) lanes")
        let bs = Self.blockSize
        var used = [Int](repeating: 0, count: Self.width)
        var ptrs = [UnsafePointer<UInt8>?](repeating: nil, count: Self.width)
        var blocks = [Int](repeating: 0, count: Self.width)
        // 1. Top up partial blocks left by the last update; hash the ones now whole.
        var any = false
        for l in input.indices where tailFill[l] > 0 && input[l].count > 0 {
            let n = min(bs - tailFill[l], input[l].count)
            (tails.baseAddress! + l * bs + tailFill[l]).copyMemory(from: input[l].baseAddress!, byteCount: n)
            tailFill[l] += n
            used[l] = n
            if tailFill[l] == bs {
                ptrs[l] = UnsafePointer(tails.baseAddress!.assumingMemoryBound(to: UInt8.self) + l * bs)
                blocks[l] = 1
                tailFill[l] = 0
                any = true
            }
        }
        if any { run(ptrs, blocks) }
        // 2. Every whole block of what is left, all lanes in one pass.
        any = false
        for l in 0..<Self.width {
            ptrs[l] = nil; blocks[l] = 0
            guard l < input.count, let base = input[l].baseAddress else { continue }
            let whole = (input[l].count - used[l]) / bs
            if whole > 0 {
                ptrs[l] = UnsafePointer(base.assumingMemoryBound(to: UInt8.self) + used[l])
                blocks[l] = whole
                used[l] += whole * bs
                any = true
            }
        }
        if any { run(ptrs, blocks) }
        // 3. The rest (under a block) waits in the tail.
        for l in input.indices {
            counts[l] &+= UInt64(input[l].count)
            let left = input[l].count - used[l]
            guard left > 0 else { continue }
            (tails.baseAddress! + l * bs + tailFill[l]).copyMemory(from: input[l].baseAddress! + used[l], byteCount: left)
            tailFill[l] += left
        }
    }

    /// The 16-byte MD5 of lane `l`'s stream. The lane is finished: `reset` it to use it again.
    public func digest(lane l: Int) -> [UInt8] {
        let bs = Self.blockSize
        let bits = counts[l] &* 8
        // 0x80, zeros up to 56 mod 64, then the bit length little-endian.
        let padLength = (tailFill[l] < bs - 8 ? bs - 8 : 2 * bs - 8) - tailFill[l]
        var pad = [UInt8](repeating: 0, count: padLength + 8)
        pad[0] = 0x80
        for i in 0..<8 { pad[padLength + i] = UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i))) }
        pad.withUnsafeBytes { p in
            var input = [UnsafeRawBufferPointer](repeating: UnsafeRawBufferPointer(start: nil, count: 0), count: l + 1)
            input[l] = p
            update(input)
        }
        var out = [UInt8](repeating: 0, count: 16)
        for k in 0..<4 {
            let w = state[k * Self.width + l]
            for i in 0..<4 { out[4 * k + i] = UInt8(truncatingIfNeeded: w >> (8 * UInt32(i))) }
        }
        return out
    }

    private func run(_ ptrs: [UnsafePointer<UInt8>?], _ blocks: [Int]) {
        state.withUnsafeMutableBufferPointer { st in
            ptrs.withUnsafeBufferPointer { p in
                blocks.withUnsafeBufferPointer { n in
                    ck_md5x16(st.baseAddress!, p.baseAddress!, n.baseAddress!, build.rawValue)
                }
            }
        }
    }
}
