/// Seeded property tests ("fuzz") for response-header parsing (`ResponseHead`: Content-Range,
/// Content-Length, ETag, Retry-After, status lines) and the range check every ranged GET goes
/// through (`ResponseCheck.rangeProblem` / `checkRange`).
///
/// Every case is generated from `SOAK_FUZZ_SEED` (decimal or 0x-hex; default below) and its
/// case number, so a failure names the seed and case that reproduce it. `SOAK_FUZZ_ITERATIONS`
/// overrides the number of cases per property (the defaults keep each test well under 3 s in a
/// debug build).
///
/// Properties:
/// - Random and mutated header values and raw header lines (any bytes) never crash; a parsed
///   Content-Range always has 0 ≤ start ≤ end < total; a strictly formatted `bytes a-b/t` or
///   `bytes a-b/*` (any Int64 values, ASCII whitespace around) parses to exactly (a, b, t) when
///   it is consistent and to nil when it is not, through `parseContentRange` and through a
///   header line (any header-name case) alike.
/// - `rangeProblem(head, requested: r)` for a 206 is nil iff Content-Range starts at r's start
///   and ends at r's end cut at total−1, and Content-Length (if any) is its length; for a 200 iff
///   r starts at 0 and Content-Length (if any) is at most r's length; other statuses are not
///   judged. `checkRange` throws iff there is a range problem or the body is shorter than
///   promised. Whatever is accepted never writes outside the requested range.
/// - Retry-After parses to nil or a non-negative number, and the backoff computed from any
///   header value stays finite and within the policy's caps.
import Foundation
import FuzzSupport
import SoakCore
import XCTest
@testable import S3

/// A 64-bit value biased to the edges: 0, 1, powers of two ± 1, near Int64.max, anything.
private func edgy(_ g: inout SeededRandom) -> Int64 {
    switch g.int(0...5) {
    case 0: return g.pick([0, 1, 2, Int64.max, Int64.max - 1, Int64(Int32.max), Int64(UInt32.max)])
    case 1: return (Int64(1) << Int64(g.int(1...62))) + Int64(g.int(-1...1))
    case 2: return g.int64(0...1_000)
    case 3: return g.int64(0...(1 << 40))
    default: return g.int64(0...Int64.max)
    }
}

private func ws(_ g: inout SeededRandom) -> String {
    g.chance(0.7) ? "" : String((0..<g.int(1...3)).map { _ in g.pick([" ", "\t", "\r", "\n"]) })
}

private func randomCase(_ s: String, _ g: inout SeededRandom) -> String {
    String(s.map { g.chance(0.5) ? Character($0.uppercased()) : Character($0.lowercased()) })
}

private func head(_ lines: [String]) -> ResponseHead {
    var h = ResponseHead()
    for l in lines { h.consume(headerLine: l) }
    return h
}

private func triple(_ r: (start: Int64, end: Int64, total: Int64?)?) -> [Int64?]? {
    r.map { [$0.start, $0.end, $0.total] }
}

/// The strict grammar `bytes <digits>-<digits>/(<digits>|*)`, values in Int64, for comparison.
private func strictContentRange(_ v: String) -> [Int64?]?? {
    // Trimmed byte-wise: "\r\n" is one Character, so Character-wise trimming would miss a lone "\r".
    var b = Array(v.utf8)[...]
    while let c = b.first, [0x20, 0x09, 0x0D, 0x0A].contains(c) { b.removeFirst() }
    while let c = b.last, [0x20, 0x09, 0x0D, 0x0A].contains(c) { b.removeLast() }
    let s = Substring(String(decoding: b, as: UTF8.self))
    guard s.hasPrefix("bytes ") else { return .none }
    let rest = s.dropFirst(6)
    let parts = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
    guard parts.count == 2 else { return .none }
    let ab = parts[0].split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
    func digits(_ x: Substring) -> Bool { !x.isEmpty && x.allSatisfy { $0.isASCII && $0.isNumber } }
    guard ab.count == 2, digits(ab[0]), digits(ab[1]), parts[1] == "*" || digits(parts[1]) else { return .none }
    // Strictly formatted: now it parses, or it is inconsistent / out of Int64 range (nil).
    guard let a = Int64(ab[0]), let b = Int64(ab[1]), a <= b else { return .some(nil) }
    if parts[1] == "*" { return .some([a, b, nil]) }
    guard let t = Int64(parts[1]), t > b else { return .some(nil) }
    return .some([a, b, t])
}

final class ContentRangeFuzzTests: XCTestCase {
    private var failed: Bool { (testRun?.totalFailureCount ?? 0) > 0 }

    // MARK: Content-Range parsing

    func testStrictlyFormattedContentRangesRoundTrip() {
        let name = "contentRangeRoundTrip"
        for i in 0..<Fuzz.iterations(10000) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            var a = edgy(&g), b = edgy(&g)
            if g.chance(0.8), a > b { swap(&a, &b) }
            var t: Int64? = g.chance(0.15) ? nil : edgy(&g)
            if let tt = t, g.chance(0.7), tt <= b, b < Int64.max { t = b + 1 + g.int64(0...(Int64.max - b - 1) / 2) }
            let value = "bytes \(a)-\(b)/\(t.map(String.init) ?? "*")"
            let consistent = a <= b && (t.map { $0 > b } ?? true)
            let want: [Int64?]? = consistent ? [a, b, t] : nil
            let padded = ws(&g) + value + ws(&g)
            let ctx = "\(padded.debugDescription) \(Fuzz.context(name, i))"
            XCTAssertEqual(triple(ResponseHead.parseContentRange(padded)), want, ctx)
            XCTAssertEqual(strictContentRange(padded), .some(want), "oracle disagrees with itself: \(ctx)")
            // The same value through a header line, any case, any spacing after the colon.
            let line = randomCase("Content-Range", &g) + ":" + ws(&g).replacingOccurrences(of: "\n", with: " ") + value + "\r\n"
            let h = head(["HTTP/1.1 206 Partial Content\r\n", line])
            XCTAssertEqual(triple(h.contentRange), want, "\(line.debugDescription) \(ctx)")
            XCTAssertEqual(h.status, 206, ctx)
        }
    }

    func testMutatedContentRangesNeverCrashAndStayConsistent() {
        let name = "contentRangeMutations"
        let alphabet = Array("bytes 0123456789-/*+ \t\r\nBYTES=,.e_x\u{0}\u{FF}\u{663}\u{FF10}")
        for i in 0..<Fuzz.iterations(15000) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            var chars: [Character]
            if g.chance(0.3) {
                chars = (0..<g.int(0...40)).map { _ in g.pick(alphabet) }
            } else {
                chars = Array("bytes \(edgy(&g))-\(edgy(&g))/\(g.chance(0.2) ? "*" : String(edgy(&g)))")
                for _ in 0..<g.int(1...3) where !chars.isEmpty {
                    let k = g.int(0...chars.count - 1)
                    switch g.int(0...4) {
                    case 0: chars[k] = g.pick(alphabet)
                    case 1: chars.remove(at: k)
                    case 2: chars.insert(g.pick(alphabet), at: k)
                    case 3: chars.insert(contentsOf: Array(g.pick(["-", "--", "+", "-0", "99999999999999999999", "/", " ", "*"])), at: k)
                    default: chars = Array(chars[..<k])
                    }
                }
            }
            let v = String(chars)
            let ctx = "\(v.debugDescription) \(Fuzz.context(name, i))"
            let got = ResponseHead.parseContentRange(v)
            if let r = got {
                XCTAssertGreaterThanOrEqual(r.start, 0, ctx)
                XCTAssertGreaterThanOrEqual(r.end, r.start, ctx)
                if let t = r.total { XCTAssertGreaterThan(t, r.end, ctx) }
            }
            // Whatever the strict grammar decides, the parser decides the same. (Inputs outside
            // the grammar, such as "+5", are only held to the invariants above.)
            if case .some(let want) = strictContentRange(v) { XCTAssertEqual(triple(got), want, ctx) }
        }
    }

    /// Raw header lines of arbitrary bytes (not UTF-8, NUL, no colon, huge numbers) never crash
    /// the byte-level parser, and what it keeps is consistent.
    func testRawHeaderLinesNeverCrash() {
        let name = "rawHeaders"
        let names = ["HTTP/1.1 ", "HTTP/2 ", "http/1.0 ", "ETag:", "etag :", "Content-Length:", "content-length:",
                     "Content-Range:", "CONTENT-RANGE:", "Retry-After:", "retry-after:", "X-Amz-Request-Id:", "", ":"]
        for i in 0..<Fuzz.iterations(5000) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            var lines: [[UInt8]] = []
            for _ in 0..<g.int(1...6) {
                var line = Array(g.pick(names).utf8)
                if g.chance(0.5) { line = Array(randomCase(String(decoding: line, as: UTF8.self), &g).utf8) }
                for _ in 0..<g.int(0...40) {
                    switch g.int(0...3) {
                    case 0: line.append(UInt8(truncatingIfNeeded: g.next()))
                    case 1: line.append(g.pick(Array("0123456789-/* \t\r\n\"W".utf8)))
                    case 2: line += Array(g.pick(["bytes ", "\"", "W/", "&#34;", "&quot;", "-1", "99999999999999999999",
                                                  "inf", "nan", "1e309", "0x10", "\u{0}", "\r\n"]).utf8)
                    default: line += Array(String(edgy(&g)).utf8)
                    }
                }
                lines.append(line)
            }
            var h = ResponseHead()
            for var line in lines {
                line.withUnsafeMutableBytes { h.consume(headerBytes: UnsafeRawBufferPointer($0)) }
            }
            let ctx = "\(lines.map { String(decoding: $0, as: UTF8.self).debugDescription }) \(Fuzz.context(name, i))"
            XCTAssertTrue((0...999).contains(h.status), ctx)
            if let r = h.contentRange {
                XCTAssertTrue(r.start >= 0 && r.end >= r.start && (r.total.map { $0 > r.end } ?? true), ctx)
            }
            if let ra = h.retryAfter { XCTAssertTrue(ra >= 0, ctx) }
            // The string and byte entry points agree.
            var h2 = ResponseHead()
            for line in lines { h2.consume(headerLine: String(decoding: line, as: UTF8.self)) }
            if lines.allSatisfy({ String(validating: $0, as: UTF8.self) != nil }) { XCTAssertEqual(h, h2, ctx) }
        }
    }

    // MARK: Range check

    private struct RangeCase {
        var status: Int
        var requested: ClosedRange<Int64>
        var contentRange: String?
        var contentLength: Int64?
        var lines: [String] {
            ["HTTP/1.1 \(status) X\r\n"] + (contentRange.map { ["Content-Range: \($0)\r\n"] } ?? [])
                + (contentLength.map { ["Content-Length: \($0)\r\n"] } ?? [])
        }
    }

    /// A realistic request (blocks of an object, never near Int64.max) and an answer that is
    /// right about half the time and otherwise off in one of the ways servers and proxies are.
    private func rangeCase(_ g: inout SeededRandom) -> RangeCase {
        let objectSize = g.chance(0.2) ? g.int64(1...4096) : g.int64(1...(1 << 44))
        let lo = g.chance(0.2) ? 0 : g.int64(0...(objectSize - 1))
        let hi = lo + (g.chance(0.3) ? g.int64(0...16) : g.int64(0...(1 << 26)))  // may run past the end
        var c = RangeCase(status: 206, requested: lo...hi, contentRange: nil, contentLength: nil)
        var start = lo, end = min(hi, objectSize - 1)
        var total: Int64? = g.chance(0.1) ? nil : objectSize
        if total == nil { end = hi }
        var length: Int64? = g.chance(0.7) ? end - start + 1 : nil
        switch g.int(0...13) {
        case 0: start += g.int64(1...3); if start > end { end = start }
        case 1: end -= g.int64(1...3); if end < start { end = start; start = max(0, start - 1) }
        case 2: end += g.int64(1...3)
        case 3: total = end + g.int64(1...5)                                  // a total that disagrees with the request
        case 4: length = (length ?? end - start + 1) + g.pick([-1, 1, -(end - start + 1)])
        case 5: c.status = 200; length = g.chance(0.2) ? nil : g.chance(0.5) ? objectSize : g.int64(0...(hi - lo + 2))
        case 6: c.status = g.pick([200, 304, 403, 412, 416, 500, 503])
        case 7: c.contentRange = g.pick(["", "bytes */\(objectSize)", "bytes \(start)-\(end)", "bytes=\(start)-\(end)/\(objectSize)"])
        default: break
        }
        if c.contentRange == nil && !(c.status == 206 && g.chance(0.03)) {
            c.contentRange = "bytes \(start)-\(end)/\(total.map(String.init) ?? "*")"
        }
        c.contentLength = length
        return c
    }

    /// The contract, restated from the documentation.
    private func expectedProblem(_ c: RangeCase) -> Bool {
        let r = c.requested
        let cr = c.contentRange.flatMap(ResponseHead.parseContentRange)
        switch c.status {
        case 206:
            guard let cr else { return true }
            let end = cr.total.map { min(r.upperBound, $0 - 1) } ?? r.upperBound
            if cr.start != r.lowerBound || cr.end != end { return true }
            if let len = c.contentLength, len != cr.end - cr.start + 1 { return true }
            return false
        case 200:
            if r.lowerBound != 0 { return true }
            if let len = c.contentLength, len > r.upperBound - r.lowerBound + 1 { return true }
            return false
        default:
            return false
        }
    }

    func testRangeProblemMatchesTheContractAndNeverWritesOutsideTheRange() {
        let name = "rangeProblem"
        var accepted = 0, refused = 0
        for i in 0..<Fuzz.iterations(15000) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            let c = rangeCase(&g)
            let h = head(c.lines)
            let ctx = "\(c.lines) requested \(c.requested) \(Fuzz.context(name, i))"
            let problem = ResponseCheck.rangeProblem(h, requested: c.requested)
            XCTAssertEqual(problem != nil, expectedProblem(c), "problem: \(problem ?? "none") \(ctx)")
            if let p = problem {
                refused += 1
                XCTAssertFalse(p.isEmpty || p.contains("\n"), ctx)
            } else if c.status == 206 || c.status == 200 {
                accepted += 1
                // Bytes of an accepted answer land at [offset, offset + length) and stay in the range.
                let offset = c.status == 206 ? h.contentRange!.start : 0
                let length = c.status == 206 ? h.contentRange!.end - h.contentRange!.start + 1 : h.contentLength
                XCTAssertEqual(offset, c.requested.lowerBound, ctx)
                if let length { XCTAssertLessThanOrEqual(offset + length - 1, c.requested.upperBound, ctx) }
                if c.status == 206, let t = h.contentRange!.total {
                    XCTAssertTrue(h.contentRange!.end == c.requested.upperBound || h.contentRange!.end == t - 1, ctx)
                }
            }
            // checkRange: throws iff there is a problem or the body falls short of what was promised.
            let promised: Int64? = c.status == 206 ? h.contentRange.map { $0.end - $0.start + 1 } ?? h.contentLength
                : (c.status == 200 ? h.contentLength : nil)
            for body in Set([promised ?? 0, max(0, (promised ?? 0) - 1), (promised ?? 0) + 1]) {
                var short = false
                if let p = promised, c.status == 206 || c.status == 200, body < p { short = true }
                if let len = h.contentLength, c.status == 200 || c.status == 206, body < len { short = true }
                var thrown: S3Error? = nil
                do {
                    try ResponseCheck.checkRange(h, requested: c.requested, bodyBytes: body, operation: "GetObject",
                                                 bucket: "b", key: "k")
                } catch let e as S3Error { thrown = e } catch { XCTFail("\(error) \(ctx)") }
                XCTAssertEqual(thrown != nil, problem != nil || short, "body \(body): \(thrown.map { "\($0)" } ?? "no error") \(ctx)")
                if let e = thrown {
                    if problem != nil { XCTAssertEqual(e.kind, .invalidResponse, ctx) } else {
                        XCTAssertEqual(e.kind, .shortBody(expected: promised ?? h.contentLength ?? 0, got: body), ctx)
                    }
                }
            }
        }
        if !failed {
            XCTAssertGreaterThan(accepted, Fuzz.iterations(15000) / 5, "both outcomes must be exercised")
            XCTAssertGreaterThan(refused, Fuzz.iterations(15000) / 5, "both outcomes must be exercised")
        }
    }

    // MARK: Retry-After

    func testRetryAfterIsNonNegativeAndBackoffStaysBounded() {
        let name = "retryAfter"
        let tokens = ["0", "1", "1.5", "-1", "-0", "inf", "+inf", "infinity", "nan", "NaN", "-nan", "1e308", "1e309",
                      "0x1p3", "Wed, 21 Oct 2015 07:28:00 GMT", "", " ", "5 ", "\t7\r\n", "99999999999999999999999",
                      "1_000", "１", "\u{0}", "3.4028236e38"]
        let policy = RetryPolicy(maxAttempts: 6, baseDelay: 0.2, maxDelay: 10)
        for i in 0..<Fuzz.iterations(8000) {
            if failed { break }
            var g = Fuzz.rng(name, i)
            var v = g.chance(0.5) ? g.pick(tokens) : String(Double(edgy(&g)) / Double(g.pick([1, 10, 1000])))
            if g.chance(0.3) { v = ws(&g) + v + ws(&g) }
            if g.chance(0.2), !v.isEmpty { v.remove(at: v.index(v.startIndex, offsetBy: g.int(0...v.count - 1))) }
            let ctx = "\(v.debugDescription) \(Fuzz.context(name, i))"
            let ra = ResponseHead.parseRetryAfter(v)
            if let ra { XCTAssertFalse(ra.isNaN || ra < 0, "\(ra) \(ctx)") }
            let h = head(["HTTP/1.1 503 Slow Down\r\n", "Retry-After: " + v + "\r\n"])
            XCTAssertEqual(h.retryAfter, ra, "through a header line: \(ctx)")
            // Whatever the header said, the wait is finite, non-negative and capped.
            var rng = g
            for attempt in 1..<policy.maxAttempts {
                let d = policy.delay(afterAttempt: attempt, retryAfter: h.retryAfter, random: &rng)
                XCTAssertNotNil(d, ctx)
                if let d {
                    XCTAssertTrue(d.isFinite && d >= 0, "\(d) \(ctx)")
                    XCTAssertLessThanOrEqual(d, max(policy.maxDelay, RetryPolicy.maxRetryAfter), ctx)
                }
            }
            // Plain seconds round-trip.
            let n = g.int(0...86_400)
            XCTAssertEqual(ResponseHead.parseRetryAfter(ws(&g) + String(n) + ws(&g)), Double(n), ctx)
        }
    }
}
