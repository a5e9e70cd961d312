/// Remembers, for a few seconds, an instance-metadata endpoint whose token request timed out.
///
/// Off EC2 with nothing configured, soak asks IMDS twice at startup: for the region
/// (`InstanceMetadataCredentialProvider.region`), then for credentials, at the end of the chain.
/// Where nothing answers the first probe waits out its 1 s deadline; the second would wait as
/// long again for the same silence. Only a timeout is remembered (a refused connection costs
/// nothing), only per endpoint URL, and only briefly, so a later refresh asks IMDS afresh.
import Foundation

enum InstanceMetadataReachability {
    /// Long enough to cover one command's startup (the region, then the chain), short enough
    /// that nothing later trusts it.
    static let window: TimeInterval = 10

    private static let lock = NSLock()
    nonisolated(unsafe) private static var silentUntil: [String: Date] = [:]

    /// True when a token request to `endpoint` timed out within the last `window` seconds.
    static func recentlySilent(_ endpoint: String, now: Date = Date()) -> Bool {
        lock.withLock { silentUntil[endpoint].map { now < $0 } ?? false }
    }

    /// Records the outcome of a token request to `endpoint`: a timeout is remembered, any
    /// answer forgets an earlier silence.
    static func record(_ endpoint: String, timedOut: Bool, now: Date = Date()) {
        lock.withLock { silentUntil[endpoint] = timedOut ? now.addingTimeInterval(window) : nil }
    }
}
