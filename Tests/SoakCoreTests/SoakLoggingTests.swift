import Foundation
import SoakCore
import XCTest

/// Log-line timestamps: RFC 3339, UTC, milliseconds, and stripping them back off.
final class SoakLoggingTests: XCTestCase {
    func testTimestampIsRFC3339UTCWithMilliseconds() {
        XCTAssertEqual(SoakLogging.timestamp(Date(timeIntervalSince1970: 1_796_677_200.123)), "2026-12-07T21:00:00.123Z")
        XCTAssertEqual(SoakLogging.timestamp(Date(timeIntervalSince1970: 951_868_799.9996)), "2000-02-29T23:59:59.999Z",
                       "milliseconds are truncated, never rounded into the next second")
        XCTAssertEqual(SoakLogging.timestamp(Date(timeIntervalSince1970: 0)), "1970-01-01T00:00:00.000Z")
    }

    func testTimestampIgnoresTheLocalTimeZone() {
        let old = getenv("TZ").map { String(cString: $0) }
        setenv("TZ", "Asia/Kolkata", 1); tzset()
        defer { if let old { setenv("TZ", old, 1) } else { unsetenv("TZ") }; tzset() }
        XCTAssertEqual(SoakLogging.timestamp(Date(timeIntervalSince1970: 1_796_677_200)), "2026-12-07T21:00:00.000Z")
    }

    func testStrippingTimestampLeavesTheSoakPrefix() {
        XCTAssertEqual(SoakLogging.strippingTimestamp("2026-12-07T21:00:00.123Z soak: warning: x y"), "soak: warning: x y")
        for line in ["soak: error: 2026-12-07T21:00:00.123Z x", "not a log line", "", "2026-12-07 soak: x"] {
            XCTAssertEqual(SoakLogging.strippingTimestamp(line), line)
        }
    }
}
