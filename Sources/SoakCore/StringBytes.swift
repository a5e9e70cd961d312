/// Byte-level string helpers for hot paths (no NSString bridging).
///
/// Whitespace trimming on UTF-8 bytes. Foundation's `trimmingCharacters(in:)` goes through
/// NSString and showed up at 5% of client CPU on small objects (it runs for every header and
/// every signed request).
extension StringProtocol {
    /// `self` without leading/trailing ASCII spaces, tabs, CR and LF.
    public func trimmingASCIIWhitespace() -> String {
        let u = Array(utf8)
        var lo = 0, hi = u.count
        func ws(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
        while lo < hi && ws(u[lo]) { lo += 1 }
        while hi > lo && ws(u[hi - 1]) { hi -= 1 }
        if lo == 0 && hi == u.count { return String(self) }
        return String(decoding: u[lo..<hi], as: UTF8.self)
    }
}

/// Lowercase hex of `bytes` (digests, ETags): two digits a byte, appended to `out`.
/// Inlinable, so callers in other modules get it specialized for their sequence type (as a
/// generic call it cost the coordinator measurable CPU per object; see docs/BENCHMARKS.md,
/// hash kernels and encodings).
@inlinable
public func appendLowercaseHex<S: Sequence>(_ out: inout [UInt8], _ bytes: S) where S.Element == UInt8 {
    for b in bytes {
        out.append(hexDigit(b >> 4))
        out.append(hexDigit(b & 0x0F))
    }
}

/// Lowercase hex of `bytes` as a String.
@inlinable
public func lowercaseHex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.underestimatedCount * 2)
    appendLowercaseHex(&out, bytes)
    return String(decoding: out, as: UTF8.self)
}

/// The ASCII digit of a value 0–15.
@inlinable @inline(__always)
func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 &+ v : 0x57 &+ v }

/// The directory part of a path (`/a/b/c` → `/a/b`, `c` → `.`), without NSString bridging.
public func parentDirectory(of path: String) -> String {
    guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
    if slash == path.utf8.startIndex { return "/" }
    return String(path[..<slash])
}
