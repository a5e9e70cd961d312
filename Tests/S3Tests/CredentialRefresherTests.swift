/// The refresher's schedule, backoff and keep-the-old-keys rule, driven by a fake clock (every
/// `now` is passed in).
import Foundation
import XCTest
@testable import S3

final class CredentialRefresherTests: XCTestCase {
    func creds(_ key: String, expiring at: Date?) -> Credentials {
        Credentials(accessKeyId: key, secretAccessKey: "s", sessionToken: "t", expiration: at)
    }

    func testRefreshTimeIsTheSmallerOfMarginAndAQuarter() {
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let hour = CredentialRefresher(credentials: creds("A", expiring: t0 + 3600), obtainedAt: t0)
        XCTAssertEqual(hour.refreshTime, t0 + 3600 - 900)
        let minute = CredentialRefresher(credentials: creds("A", expiring: t0 + 60), obtainedAt: t0)
        XCTAssertEqual(minute.refreshTime, t0 + 45)
        XCTAssertFalse(minute.isDue(now: t0 + 44))
        XCTAssertTrue(minute.isDue(now: t0 + 45))
        let forever = CredentialRefresher(credentials: creds("A", expiring: nil), obtainedAt: t0)
        XCTAssertNil(forever.refreshTime)
        XCTAssertFalse(forever.isDue(now: t0 + 1e9))
    }

    func testFailedRefreshKeepsKeysBacksOffAndWarnsOnce() {
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        var r = CredentialRefresher(credentials: creds("OLD", expiring: t0 + 3600), obtainedAt: t0)
        var now = t0 + 2700
        struct Down: Error {}
        var firsts: [Bool] = [], delays: [TimeInterval] = []
        for _ in 0..<5 {
            guard case let .failed(f, message) = r.refreshIfDue(now: now, load: { throw Down() }) else {
                return XCTFail("expected a failure")
            }
            XCTAssertFalse(message.isEmpty)
            firsts.append(f.firstOfStreak)
            delays.append(f.retryAt.timeIntervalSince(now))
            XCTAssertEqual(r.usable(now: now)?.accessKeyId, "OLD")
            XCTAssertFalse(r.isDue(now: now))
            now = f.retryAt
        }
        XCTAssertEqual(firsts, [true, false, false, false, false])
        XCTAssertEqual(delays, [1, 2, 4, 8, 16])
        // Not due yet: the loader is not called.
        if case .notDue = r.refreshIfDue(now: now - 0.5, load: { XCTFail("called early"); return nil }) {} else { XCTFail() }
        // A long outage: retries stay within the cap and one lands just before the expiry.
        for _ in 0..<20 { now = r.failed(now: now).retryAt; if now >= t0 + 3600 - 1 { break } }
        XCTAssertEqual(now, t0 + 3599)
        XCTAssertNil(r.usable(now: t0 + 3600))
        let after = r.failed(now: t0 + 3600)
        XCTAssertTrue(after.expired)
        XCTAssertLessThanOrEqual(after.retryAt.timeIntervalSince(t0 + 3600), CredentialRefresher.maxRetryDelay)
        // Success replaces the keys and resets the streak.
        guard case .refreshed = r.refreshIfDue(now: after.retryAt, load: { self.creds("NEW", expiring: after.retryAt + 3600) })
        else { return XCTFail("expected a refresh") }
        XCTAssertEqual(r.credentials.accessKeyId, "NEW")
        XCTAssertEqual(r.failures, 0)
        XCTAssertEqual(r.refreshTime, after.retryAt + 2700)
        XCTAssertTrue(r.failed(now: after.retryAt + 2700).firstOfStreak)
    }
}
