/// The worker loop's stall detection: a transfer the server leaves silent for longer than its
/// phase's bound (`StallBounds`) is abandoned and reported `.stalled`, which the coordinator
/// retries like any transfer failure, resuming after the bytes already written. Silence is
/// measured by each transfer's `StallWatch`, which leaves out the pauses soak makes itself;
/// `ownWork` is how the loop tells it which time was its own.
import Foundation
import S3
import SoakCore

extension WorkerLoop {
    /// Runs `body`, the loop's own work (writing, waiting on its writer or preparing files),
    /// and adds its duration to `ownTime`: no transfer can receive meanwhile.
    func ownWork<T>(_ body: () throws -> T) rethrows -> T {
        let t0 = MonotonicTime.now()
        defer { ownTime += MonotonicTime.now() - t0 }
        return try body()
    }

    /// Checks every active transfer once, after libcurl has read the sockets this turn, and
    /// abandons those silent past their bound.
    func checkStalls(now: Double) {
        var stalled: [(Active, StallBounds.Phase, Double)] = []
        for a in active.values {
            let t = a.transfer
            // The request is only asked about until the first byte (one getinfo per turn).
            let sent = t.receivedBytes > 0 || t.requestSent
            guard let (phase, silence) = a.watch.observe(now: now, own: ownTime, received: t.receivedBytes,
                                                         sent: sent, paused: t.paused) else { continue }
            if silence > stallBounds.bound(phase, stalls: a.order.stalls) { stalled.append((a, phase, silence)) }
        }
        for (a, phase, silence) in stalled {
            let o = a.order
            let bound = stallBounds.bound(phase, stalls: o.stalls)
            func s(_ x: Double) -> String { String(format: "%.1f", x) }
            let message = "stalled: nothing for \(s(silence)) s waiting for the \(phase.rawValue) (bound \(s(bound)) s, "
                + "learned from \(stallBounds.samples(phase)) transfers"
                + (o.stalls > 0 ? ", doubled for each of \(o.stalls) earlier stall(s))" : ")")
            logger.debug("\(o.key) bytes \(o.start)-\(o.end): \(message); abandoned, to be retried")
            multi.remove(a.transfer)
            ownWork {
                finish(a.transfer, curlCode: 0, stall: S3Error(kind: .stalled, operation: "GetObject", bucket: o.bucket,
                                                               key: o.key, message: message))
            }
        }
    }
}
