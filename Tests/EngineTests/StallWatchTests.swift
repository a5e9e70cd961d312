/// `StallWatch`: a transfer's silence counts only while the server is the one keeping it
/// waiting: not before the request is sent, not while soak pauses it, not during the loop's
/// own work. Times are passed in; nothing here reads a clock.
import Engine
import XCTest

final class StallWatchTests: XCTestCase {
    /// Observes one turn with the defaults of a live, unpaused transfer.
    private func turn(_ w: inout StallWatch, _ now: Double, own: Double = 0, bytes: Int64, sent: Bool = true,
                      paused: Bool = false) -> (StallBounds.Phase, Double)? {
        w.observe(now: now, own: own, received: bytes, sent: sent, paused: paused).map { ($0.phase, $0.silence) }
    }

    func testFirstByteThenGaps() throws {
        var w = StallWatch()
        XCTAssertNil(turn(&w, 10, bytes: 0, sent: false), "connecting: not the server's time")
        XCTAssertNil(turn(&w, 12, bytes: 0, sent: false))
        var r = try XCTUnwrap(turn(&w, 13, bytes: 0))
        XCTAssertEqual(r.0, .firstByte); XCTAssertEqual(r.1, 0, "the wait starts when the request is sent")
        r = try XCTUnwrap(turn(&w, 13.5, bytes: 0))
        XCTAssertEqual(r.0, .firstByte); XCTAssertEqual(r.1, 0.5, accuracy: 1e-9)
        r = try XCTUnwrap(turn(&w, 13.75, bytes: 300))
        XCTAssertEqual(r.0, .gap); XCTAssertEqual(r.1, 0)
        XCTAssertEqual(try XCTUnwrap(w.firstByteWait), 0.75, accuracy: 1e-9)
        XCTAssertNil(w.longestGap)
        r = try XCTUnwrap(turn(&w, 14.0, bytes: 300))
        XCTAssertEqual(r.0, .gap); XCTAssertEqual(r.1, 0.25, accuracy: 1e-9)
        _ = turn(&w, 14.25, bytes: 5000)
        _ = turn(&w, 14.35, bytes: 9000)
        XCTAssertEqual(try XCTUnwrap(w.longestGap), 0.5, accuracy: 1e-9)
        r = try XCTUnwrap(turn(&w, 17.35, bytes: 9000))
        XCTAssertEqual(r.0, .gap); XCTAssertEqual(r.1, 3, accuracy: 1e-9, "a silent server's gap grows")
        XCTAssertEqual(try XCTUnwrap(w.firstByteWait), 0.75, accuracy: 1e-9, "the first byte is measured once")
    }

    func testPausesDoNotCount() throws {
        var w = StallWatch()
        _ = turn(&w, 0, bytes: 100)
        // Paused by the rate limit for 30 s: no silence at all while paused.
        XCTAssertNil(turn(&w, 1, bytes: 100, paused: true))
        XCTAssertNil(turn(&w, 31, bytes: 100, paused: true))
        // Resumed at 31: the gap is counted from then, not from the last byte.
        let r = try XCTUnwrap(turn(&w, 31.5, bytes: 100))
        XCTAssertEqual(r.0, .gap); XCTAssertEqual(r.1, 0.5, accuracy: 1e-9)
        _ = turn(&w, 31.75, bytes: 200)
        XCTAssertEqual(try XCTUnwrap(w.longestGap), 0.75, accuracy: 1e-9, "nor is a pause learned as a gap")
    }

    func testTheLoopsOwnWorkDoesNotCount() throws {
        var w = StallWatch()
        _ = turn(&w, 0, own: 5, bytes: 100)
        // The loop waited 4 s on its writer (own 5 → 9) while the bytes sat in the socket.
        var r = try XCTUnwrap(turn(&w, 4.5, own: 9, bytes: 100))
        XCTAssertEqual(r.1, 0.5, accuracy: 1e-9)
        _ = turn(&w, 4.6, own: 9, bytes: 200)
        XCTAssertEqual(try XCTUnwrap(w.longestGap), 0.6, accuracy: 1e-9)
        // Same before the first byte.
        var v = StallWatch()
        _ = turn(&v, 0, own: 0, bytes: 0)
        r = try XCTUnwrap(turn(&v, 3, own: 2.5, bytes: 0))
        XCTAssertEqual(r.0, .firstByte); XCTAssertEqual(r.1, 0.5, accuracy: 1e-9)
        _ = turn(&v, 3.1, own: 2.5, bytes: 10)
        XCTAssertEqual(try XCTUnwrap(v.firstByteWait), 0.6, accuracy: 1e-9)
    }

    func testAResponseWithinOneTurnWaitedNothing() {
        var w = StallWatch()
        // The request went out and the whole response came back before the loop first looked.
        XCTAssertNotNil(turn(&w, 1, bytes: 70_000, sent: true))
        XCTAssertEqual(w.firstByteWait, 0)
        XCTAssertNil(w.longestGap)
    }

    func testSilenceIsNeverNegative() throws {
        var w = StallWatch()
        _ = turn(&w, 10, own: 0, bytes: 0)
        // The own-work total can outrun the turn's wall time by clock granularity.
        let r = try XCTUnwrap(turn(&w, 10.001, own: 0.002, bytes: 0))
        XCTAssertEqual(r.1, 0)
    }
}
