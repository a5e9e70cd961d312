/// UTC calendar arithmetic without DateFormatter.
///
/// SigV4 needs `yyyyMMdd'T'HHmmss'Z'` stamps and listings carry ISO 8601 times such as
/// `2009-10-12T17:50:30.000Z`. Both are converted with Howard Hinnant's days-from-civil
/// algorithm (proleptic Gregorian, pure integer math), so they are locale-free, thread-safe and
/// identical on every platform.
import Foundation

enum UTCTime {
    struct Fields: Equatable {
        var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int
    }

    /// Days since 1970-01-01 for a civil date.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Civil date for days since 1970-01-01.
    static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// Broken-down UTC time of a date (sub-second part dropped, rounding toward the past).
    static func fields(_ date: Date) -> Fields {
        let t = Int(floor(date.timeIntervalSince1970))
        let days = t >= 0 ? t / 86_400 : (t - 86_399) / 86_400
        let secs = t - days * 86_400
        let c = civilFromDays(days)
        return Fields(year: c.year, month: c.month, day: c.day,
                      hour: secs / 3600, minute: secs % 3600 / 60, second: secs % 60)
    }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// `20150830T123600Z`
    static func amzDate(_ date: Date) -> String {
        String(decoding: amzDateBytes(date), as: UTF8.self)
    }

    /// `amzDate` as UTF-8 bytes, written digit by digit (it is part of every signed request).
    static func amzDateBytes(_ date: Date) -> [UInt8] {
        let f = fields(date)
        guard (0...9999).contains(f.year) else {
            return Array((pad(f.year, 4) + pad(f.month, 2) + pad(f.day, 2) + "T"
                + pad(f.hour, 2) + pad(f.minute, 2) + pad(f.second, 2) + "Z").utf8)
        }
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: 16)
        func put(_ v: Int, at end: Int, width: Int) {
            var x = v
            for k in stride(from: end - 1, through: end - width, by: -1) {
                out[k] = UInt8(ascii: "0") + UInt8(x % 10)
                x /= 10
            }
        }
        put(f.year, at: 4, width: 4); put(f.month, at: 6, width: 2); put(f.day, at: 8, width: 2)
        out[8] = UInt8(ascii: "T")
        put(f.hour, at: 11, width: 2); put(f.minute, at: 13, width: 2); put(f.second, at: 15, width: 2)
        out[15] = UInt8(ascii: "Z")
        return out
    }

    /// The `yyyymmdd` part of an `amzDateBytes` stamp (everything before the `T`).
    static func day(ofStamp stamp: [UInt8]) -> ArraySlice<UInt8> {
        stamp[..<(stamp.firstIndex(of: UInt8(ascii: "T")) ?? stamp.endIndex)]
    }

    /// `20150830`
    static func dateStamp(_ date: Date) -> String {
        let f = fields(date)
        return pad(f.year, 4) + pad(f.month, 2) + pad(f.day, 2)
    }

    /// Parses ISO 8601 / RFC 3339 date-times as S3 servers write them:
    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM)?` (a missing zone means UTC; a space
    /// instead of `T` is accepted). Returns seconds since 1970, or nil when malformed.
    static func parseISO8601(_ text: String) -> Double? {
        var t = text
        return t.withUTF8 { parseISO8601(utf8: $0) }
    }

    /// `parseISO8601` of UTF-8 text. Surrounding whitespace is what Foundation's
    /// `.whitespacesAndNewlines` holds: for ASCII text that is tab, LF, VT, FF, CR and space,
    /// trimmed here on the bytes (it runs for every key of a listing); other text is trimmed by
    /// Foundation.
    static func parseISO8601(utf8 raw: UnsafeBufferPointer<UInt8>) -> Double? {
        guard raw.allSatisfy({ $0 < 0x80 }) else {
            let trimmed = Array(String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).utf8)
            return trimmed.withUnsafeBufferPointer { parseTrimmedISO8601($0) }
        }
        func space(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0D) }
        var lo = 0, hi = raw.count
        while lo < hi && space(raw[lo]) { lo += 1 }
        while hi > lo && space(raw[hi - 1]) { hi -= 1 }
        return parseTrimmedISO8601(UnsafeBufferPointer(rebasing: raw[lo..<hi]))
    }

    private static func parseTrimmedISO8601(_ b: UnsafeBufferPointer<UInt8>) -> Double? {
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var v = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2),
              expect(UInt8(ascii: "-")), let day = digits(2) else { return nil }
        guard i < b.count, b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ")
        else { return nil }
        i += 1
        guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2),
              expect(UInt8(ascii: ":")), let second = digits(2) else { return nil }
        guard (1...12).contains(month), (1...31).contains(day), hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var fraction = 0.0
        if i < b.count, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",") {
            i += 1
            var scale = 0.1
            var any = false
            while i < b.count, b[i] >= 48 && b[i] <= 57 {
                fraction += Double(b[i] - 48) * scale
                scale /= 10
                i += 1
                any = true
            }
            guard any else { return nil }
        }
        var offset = 0
        if i < b.count {
            switch b[i] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"):
                i += 1
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
                i += 1
                guard let oh = digits(2) else { return nil }
                _ = expect(UInt8(ascii: ":"))
                guard let om = digits(2), oh <= 23, om <= 59 else { return nil }
                offset = sign * (oh * 3600 + om * 60)
            default:
                return nil
            }
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Double(secs) + fraction
    }
}
