import CKernels

/// CRC32C (Castagnoli): the cache's per-block checksum, computed while a block streams in.
/// Uses the CPU's CRC instruction when it has one (x86-64: three streams side by side, which
/// hides the instruction's latency; see docs/BENCHMARKS.md, hash kernels and encodings).
public struct CRC32C: Sendable {
    private static let hardware = ck_crc32c_has_hw() != 0
    public private(set) var value: UInt32 = 0
    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        value = ck_crc32c(value, base, bytes.count, Self.hardware ? 1 : 0)
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = CRC32C(); c.update(bytes); return c.value
    }
    public static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }

    /// The portable path, for checking the hardware one against.
    public static func softwareChecksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { ck_crc32c(0, $0.baseAddress, $0.count, 0) }
    }
}
