/// A deterministic random number generator for tests and simulations.
///
/// How it works: SplitMix64 (Steele, Lea & Flood 2014; the seeding generator of xoshiro). The
/// state advances by a fixed odd constant and each output is that state passed through a
/// 64-bit mixing function. Fast, passes BigCrush, any seed (including 0) is fine, and the same
/// seed always yields the same sequence on every platform. Not cryptographic.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    /// The golden-ratio increment of SplitMix64: odd, so the state visits all 2^64 values.
    static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15

    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= SeededRandom.increment
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
