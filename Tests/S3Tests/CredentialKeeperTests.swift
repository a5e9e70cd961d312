/// The keeper's refresh wiring with a fake provider and a fake clock: it calls the provider that
/// produced the keys when the refresher says so, hands new keys to subscribers, keeps the old
/// ones through failures (one warning, no secret logged), and never refreshes static keys.
import Foundation
import Logging
import XCTest
@testable import S3

final class CredentialKeeperTests: XCTestCase {
    final class Clock: @unchecked Sendable {
        private let lock = NSLock()
        private var t = Date(timeIntervalSince1970: 2_000_000)
        var now: Date { lock.lock(); defer { lock.unlock() }; return t }
        func advance(to d: Date) { lock.lock(); t = d; lock.unlock() }
    }

    /// Answers from a script: a key name (60-second keys from now), or nil to fail.
    final class FakeProvider: CredentialProvider, @unchecked Sendable {
        let name = "fake source"
        private let lock = NSLock()
        private var script: [String?]
        private(set) var calls = 0
        let clock: Clock
        init(_ script: [String?], clock: Clock) { self.script = script; self.clock = clock }
        struct Down: Error, CustomStringConvertible { var description: String { "fake source: endpoint down" } }
        func load() throws -> Credentials? {
            lock.lock(); defer { lock.unlock() }
            calls += 1
            guard !script.isEmpty, let key = script.removeFirst() else { throw Down() }
            return Credentials(accessKeyId: key, secretAccessKey: "SECRET-\(key)", sessionToken: "TOKEN-\(key)",
                               expiration: clock.now + 60)
        }
    }

    final class Captured: @unchecked Sendable {
        let lock = NSLock()
        var lines: [(Logger.Level, String)] = []
    }

    struct CaptureHandler: LogHandler {
        let box: Captured
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] } set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            box.lock.lock(); box.lines.append((level, "\(message)")); box.lock.unlock()
        }
    }

    func creds(_ key: String, expiring at: Date?) -> Credentials {
        Credentials(accessKeyId: key, secretAccessKey: "SECRET-\(key)", sessionToken: "TOKEN-\(key)", expiration: at)
    }

    func testRefreshesFromTheSameProviderAndTellsSubscribers() {
        let clock = Clock()
        let t0 = clock.now
        let provider = FakeProvider(["B", "C"], clock: clock)
        let keeper = CredentialKeeper(credentials: creds("A", expiring: t0 + 60), provider: provider,
                                      logger: Logger(label: "test"), now: { clock.now })
        final class Seen: @unchecked Sendable { var keys: [String] = [] }
        let seen = Seen()
        let id = keeper.subscribe { seen.keys.append($0.accessKeyId) }
        XCTAssertEqual(seen.keys, ["A"], "a subscriber gets the current keys at once")
        XCTAssertEqual(keeper.nextAttempt, t0 + 45)
        clock.advance(to: t0 + 44)
        XCTAssertFalse(keeper.tick())
        XCTAssertEqual(provider.calls, 0)
        clock.advance(to: t0 + 45)
        XCTAssertTrue(keeper.tick())
        XCTAssertEqual(keeper.current.accessKeyId, "B")
        XCTAssertEqual(keeper.current.sessionToken, "TOKEN-B")
        XCTAssertEqual(seen.keys, ["A", "B"])
        XCTAssertEqual(keeper.nextAttempt, t0 + 45 + 45)
        keeper.unsubscribe(id)
        clock.advance(to: t0 + 90)
        XCTAssertTrue(keeper.tick())
        XCTAssertEqual(keeper.current.accessKeyId, "C")
        XCTAssertEqual(seen.keys, ["A", "B"], "an unsubscribed handler hears nothing more")
        XCTAssertEqual(provider.calls, 2)
        XCTAssertEqual(keeper.refreshes, 2)
    }

    func testFailureKeepsOldKeysWarnsOnceAndRetriesWithBackoff() {
        let clock = Clock()
        let t0 = clock.now
        let provider = FakeProvider([nil, nil, nil, "B"], clock: clock)
        let box = Captured()
        let logger = Logger(label: "test") { _ in CaptureHandler(box: box) }
        let keeper = CredentialKeeper(credentials: creds("A", expiring: t0 + 60), provider: provider,
                                      logger: logger, now: { clock.now })
        final class Seen: @unchecked Sendable { var keys: [String] = [] }
        let seen = Seen()
        keeper.subscribe { seen.keys.append($0.accessKeyId) }
        var now = t0 + 45
        var delays: [TimeInterval] = []
        for _ in 0..<3 {
            clock.advance(to: now)
            XCTAssertFalse(keeper.tick())
            XCTAssertEqual(keeper.current.accessKeyId, "A", "the old keys stay while they work")
            let next = keeper.nextAttempt!
            delays.append(next.timeIntervalSince(now))
            clock.advance(to: next - 0.1)
            XCTAssertFalse(keeper.tick())  // not due yet: the provider is not called
            now = next
        }
        XCTAssertEqual(delays, [1, 2, 4])
        XCTAssertEqual(provider.calls, 3)
        clock.advance(to: now)
        XCTAssertTrue(keeper.tick())
        XCTAssertEqual(keeper.current.accessKeyId, "B")
        XCTAssertEqual(seen.keys, ["A", "B"])
        let warnings = box.lines.filter { $0.0 == .warning }.map(\.1)
        XCTAssertEqual(warnings.count, 1, "\(warnings)")
        XCTAssertTrue(warnings[0].contains("fake source: endpoint down"), warnings[0])
        XCTAssertTrue(warnings[0].contains("keeping the current ones"), warnings[0])
        for (_, line) in box.lines {
            XCTAssertFalse(line.contains("SECRET-") || line.contains("TOKEN-"), "a secret was logged: \(line)")
        }
    }

    func testStaticCredentialsAreNeverRefreshed() {
        let clock = Clock()
        let provider = FakeProvider(["B"], clock: clock)
        let keeper = CredentialKeeper(credentials: creds("A", expiring: nil), provider: provider,
                                      logger: Logger(label: "test"), now: { clock.now })
        XCTAssertNil(keeper.nextAttempt)
        clock.advance(to: clock.now + 1e8)
        XCTAssertFalse(keeper.tick())
        keeper.start()  // starts no timer: nothing to refresh
        keeper.stop()
        XCTAssertEqual(provider.calls, 0)
        XCTAssertEqual(keeper.current.accessKeyId, "A")
        let fixed = CredentialKeeper(fixed: creds("F", expiring: clock.now + 10))
        XCTAssertNil(fixed.nextAttempt)
        XCTAssertFalse(fixed.tick())
    }

    /// The timer thread runs `tick` by itself once a refresh is due (a real clock, but the
    /// test waits on the event, not on a duration).
    func testTimerThreadRefreshes() {
        let clock = Clock()
        let provider = FakeProvider(["B"], clock: clock)
        // The fake clock is moved past the refresh time: the thread finds it due at once.
        let keeper = CredentialKeeper(credentials: creds("A", expiring: clock.now + 60), provider: provider,
                                      logger: Logger(label: "test"), now: { clock.now })
        let got = expectation(description: "refreshed")
        keeper.subscribe { if $0.accessKeyId == "B" { got.fulfill() } }
        clock.advance(to: clock.now + 50)
        keeper.start()
        wait(for: [got], timeout: 30)
        keeper.stop()
        XCTAssertEqual(keeper.current.accessKeyId, "B")
    }
}
