import Cache
import Foundation

/// One line of `soak doctor`: a verdict, the check's name and what was found (README, "soak doctor").
struct DoctorCheck: Encodable, Equatable {
    enum Status: String, Encodable {
        case ok, warn
        /// Printed as `FAIL` so it stands out; `fail` in JSON.
        case fail
        var label: String { self == .fail ? "FAIL" : rawValue }
    }

    var status: Status
    var name: String
    var detail: String

    static func ok(_ name: String, _ detail: String) -> DoctorCheck { .init(status: .ok, name: name, detail: detail) }
    static func warn(_ name: String, _ detail: String) -> DoctorCheck { .init(status: .warn, name: name, detail: detail) }
    static func fail(_ name: String, _ detail: String) -> DoctorCheck { .init(status: .fail, name: name, detail: detail) }

    /// Width of the name column: the longest check name, so details line up.
    static let nameWidth = 13

    /// `ok    credentials    from environment`: status and name padded, so the details line up.
    var line: String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        return pad(status.label, 4) + "  " + pad(name, Self.nameWidth) + "  " + detail
    }
}

/// `soak doctor --json`: every check, and the exit status they add up to.
struct DoctorReport: Encodable {
    var source: String
    var checks: [DoctorCheck]

    /// 0 when no check FAILs (warnings included), else 1 (README, "Exit status").
    var exitStatus: Int32 { checks.contains { $0.status == .fail } ? ExitStatus.failure : ExitStatus.success }

    enum CodingKeys: String, CodingKey { case source, checks, ok, exitStatus = "exit_status" }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(source, forKey: .source)
        try c.encode(checks, forKey: .checks)
        try c.encode(exitStatus == ExitStatus.success, forKey: .ok)
        try c.encode(exitStatus, forKey: .exitStatus)
    }
}

/// The verdicts of `soak doctor` that need no system: what was read or measured goes in, a
/// check comes out.
enum DoctorRules {
    /// SigV4 refuses a request signed more than 15 minutes off the server's clock.
    static let skewLimit: Double = 900
    /// Beyond this, a clock is drifting enough to fix before it reaches the limit above.
    static let skewWarning: Double = 60
    /// Below this much room the cache cannot hold the blocks of a few reads in flight.
    static let minimumRoom: Int64 = 64 * CacheFormat.blockSize

    /// Seconds the server's clock is ahead of ours: its `Date` against the middle of the
    /// request (the header has one-second resolution). nil without a parseable date.
    static func clockSkew(serverDate: String?, sentAt: Date, receivedAt: Date) -> Double? {
        guard let raw = serverDate, let server = parseHTTPDate(raw) else { return nil }
        let middle = sentAt.timeIntervalSince1970 + receivedAt.timeIntervalSince(sentAt) / 2
        return server.timeIntervalSince1970 - middle
    }

    /// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
    static func parseHTTPDate(_ raw: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE',' dd MMM yyyy HH':'mm':'ss 'GMT'"
        return f.date(from: raw.trimmingCharacters(in: .whitespaces))
    }

    static func skew(_ seconds: Double?) -> (DoctorCheck.Status, String) {
        guard let s = seconds else { return (.ok, "clock skew unknown (no Date header)") }
        let text = "clock skew \(s.rounded() > 0 ? "+" : "")\(Int(s.rounded())) s"
        if abs(s) >= skewLimit { return (.fail, text + ": beyond SigV4's 15 minutes, requests are refused; fix this host's clock (NTP)") }
        if abs(s) >= skewWarning { return (.warn, text + ": this host's clock is off; check NTP") }
        return (.ok, text)
    }

    /// Whether `/etc/fuse.conf`'s text enables `user_allow_other` (a line of its own; `#` comments).
    static func fuseConfAllowsOther(_ text: String) -> Bool {
        text.split(whereSeparator: \.isNewline).contains { line in
            line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?
                .trimmingCharacters(in: .whitespaces) == "user_allow_other"
        }
    }

    /// AppArmor from `/sys/module/apparmor/parameters/enabled` (`Y`/`N`, nil when absent) and
    /// this process's label (`/proc/self/attr/current`: `unconfined` or `PROFILE (MODE)`).
    static func appArmor(enabled: String?, label: String?) -> DoctorCheck {
        let on = enabled?.trimmingCharacters(in: .whitespacesAndNewlines) == "Y"
        guard on else { return .ok("apparmor", "not enabled") }
        let l = (label ?? "").trimmingCharacters(in: .whitespacesAndNewlines.union(CharacterSet(charactersIn: "\0")))
        if l.isEmpty || l == "unconfined" { return .ok("apparmor", "enabled; soak runs unconfined") }
        if l.hasSuffix("(complain)") { return .ok("apparmor", "enabled; profile \(l) only logs") }
        return .warn("apparmor", "enabled; soak runs confined by \(l): the profile must allow mount, /dev/fuse and the cache directory")
    }

    /// Room for the cache on its file system: what is free beyond the share soak keeps free,
    /// against `--cache-size`. `existing` is true when the cache already exists (it can
    /// evict to make room, so too little room is only a warning).
    static func space(free: Int64, total: Int64, capacity: CacheCapacity, existing: Bool) -> DoctorCheck {
        let reserve = Int64(Double(total) * DiskCache.minFreeFraction)
        let room = max(0, free - reserve)
        let cap = capacity.bytes(filesystemBytes: total)
        let head = "\(human(free)) free of \(human(total))"
        if room < minimumRoom {
            let text = head + ": less than \(human(minimumRoom)) above the 5% soak keeps free"
            return existing ? .warn("cache-space", text + "; the cache only evicts") : .fail("cache-space", text)
        }
        guard let cap else { return .ok("cache-space", head + "; no --cache-size: the cache may use \(human(room))") }
        if cap > room {
            return .warn("cache-space", head + ": --cache-size \(human(cap)) exceeds the \(human(room)) available; the cache stays below that")
        }
        return .ok("cache-space", head + "; --cache-size \(human(cap)) fits")
    }

    /// Bytes in the units `--cache-size` reads back (powers of 1024).
    static func human(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var v = Double(bytes), i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(bytes) B" : String(format: "%.1f %@", v, units[i])
    }
}
