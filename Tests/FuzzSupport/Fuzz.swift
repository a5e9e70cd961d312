import Foundation
import SoakCore

/// Seeds, iteration counts and per-case generators for the seeded property ("fuzz") tests.
/// `SOAK_FUZZ_SEED` (decimal, 0x-hex, or any text, hashed) and `SOAK_FUZZ_ITERATIONS` override the
/// defaults; every failure message names the seed and the case.
public enum Fuzz {
    public static let defaultSeed: UInt64 = 0x50AC_F0CC_2024_0001

    /// `SOAK_FUZZ_SEED` as decimal or 0x-hex; any other text is hashed, so every value is usable.
    public static let seed: UInt64 = {
        guard let s = ProcessInfo.processInfo.environment["SOAK_FUZZ_SEED"]?.trimmingCharacters(in: .whitespaces),
              !s.isEmpty else { return defaultSeed }
        if s.lowercased().hasPrefix("0x"), let v = UInt64(s.dropFirst(2), radix: 16) { return v }
        if let v = UInt64(s) { return v }
        return fnv1a(s)
    }()

    public static func iterations(_ defaultCount: Int) -> Int {
        if let s = ProcessInfo.processInfo.environment["SOAK_FUZZ_ITERATIONS"], let n = Int(s), n > 0 { return n }
        return defaultCount
    }

    public static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    /// The generator for case `i` of property `name`: independent of every other case.
    public static func rng(_ name: String, _ i: Int) -> SeededRandom {
        var g = SeededRandom(seed: seed ^ fnv1a(name) ^ (UInt64(i) &* 0x9E37_79B9_7F4A_7C15))
        _ = g.next()
        return g
    }

    public static func context(_ name: String, _ i: Int) -> String {
        "[reproduce: SOAK_FUZZ_SEED=0x\(String(seed, radix: 16)) \(name) case \(i)]"
    }
}

extension SeededRandom {
    public mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &self) }
    public mutating func int64(_ r: ClosedRange<Int64>) -> Int64 { Int64.random(in: r, using: &self) }
    public mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    public mutating func pick<T>(_ a: [T]) -> T { a[Int.random(in: 0..<a.count, using: &self)] }
}
