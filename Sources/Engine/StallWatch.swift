/// How long one transfer has been left waiting by the server, not counting the waits soak
/// causes itself.
///
/// How it works. The worker's loop calls `observe` once per turn, after libcurl has read the
/// sockets, with the transfer's count of received bytes. Bytes that arrived since the last turn
/// end a wait: the first one ends the first-byte phase, later ones a gap, and the wait is kept
/// as a sample for `StallBounds` (which learns from it if the transfer completes). The clock of
/// a wait restarts whenever soak holds the transfer itself:
/// - while it is paused (MAX_SPEED pacing, or a bulk transfer yielding to a mount read), and
///   again when it resumes;
/// - before libcurl has sent the request (connecting, or waiting in libcurl to start): the
///   connect timeout governs that, and nothing is asked of the server yet;
/// - for the time the loop spent on its own work (`own`: waits on its writer thread, writing
///   staged bytes, opening files, writing reports to the coordinator, and any time a poll
///   outlasted its timeout, waiting for a CPU), during which no transfer could receive: bytes
///   sitting in a socket then are not the server's delay.
/// Waits are measured to the turn that sees their bytes, so they are at most a turn long.
public struct StallWatch: Sendable, Equatable {
    /// Seconds from the request being sent to its first byte (nil until it came).
    public private(set) var firstByteWait: Double?
    /// The longest gap between bytes so far (nil until a second arrival was seen).
    public private(set) var longestGap: Double?
    /// When the current wait began, and the loop's own-work total then.
    private var markAt: Double?
    private var ownAtMark = 0.0
    /// Bytes received at the last turn.
    private var seen: Int64 = 0

    public init() {}

    /// One loop turn. `now`: monotonic seconds; `own`: the loop's running total of seconds
    /// spent on its own work; `received`: bytes the transfer has taken (head and body);
    /// `sent`: libcurl has sent the request; `paused`: soak holds the transfer.
    /// Returns the phase being waited in and the server's share of the wait so far, or nil
    /// while the transfer is not waiting on the server.
    public mutating func observe(now: Double, own: Double, received: Int64, sent: Bool,
                                 paused: Bool) -> (phase: StallBounds.Phase, silence: Double)? {
        if received > seen {
            let waited = markAt.map { max(0, now - $0 - (own - ownAtMark)) } ?? 0
            if seen == 0 {
                firstByteWait = waited
            } else {
                longestGap = max(longestGap ?? 0, waited)
            }
            seen = received
            mark(now, own)
        }
        if paused {
            mark(now, own)
            return nil
        }
        guard sent || seen > 0 else { return nil }
        guard let m = markAt else {
            mark(now, own)
            return (.firstByte, 0)
        }
        return (seen == 0 ? .firstByte : .gap, max(0, now - m - (own - ownAtMark)))
    }

    private mutating func mark(_ now: Double, _ own: Double) {
        markAt = now
        ownAtMark = own
    }
}
