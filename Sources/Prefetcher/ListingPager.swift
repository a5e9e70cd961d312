import Logging
import S3
import SoakCore

/// Pages through a ListObjectsV2 listing: each page retried with backoff (`RetryPolicy`), a
/// truncated page without a new continuation token refused (it would loop forever), and the
/// caller's handler run page by page so work starts before the listing ends. Shared by download,
/// prewarm and mount.
public enum ListingPager {
    /// Returns false when `shouldStop` ended the listing early (it is asked before each page).
    public static func run(store: ObjectStore, bucket: String, prefix: String, retry: RetryPolicy, logger: Logger,
                           shouldStop: () -> Bool = { false }, page handle: (ListPage) throws -> Void) throws -> Bool {
        var random = SystemRandomNumberGenerator()
        var token: String?
        repeat {
            if shouldStop() { return false }
            let page = try withRetries(
                policy: retry, clock: SystemClock(), random: &random,
                isRetryable: { ($0 as? S3Error)?.isRetryable ?? false },
                retryAfter: { ($0 as? S3Error)?.retryAfter },
                onRetry: { n, e, d in
                    logger.warning("listing failed (attempt \(n)), retrying in \(String(format: "%.1f", d)) s: \(e)")
                }) {
                try store.listPage(bucket: bucket, prefix: prefix, delimiter: nil, continuationToken: token, maxKeys: 1000)
            }
            try handle(page)
            if page.isTruncated {
                guard let next = page.nextContinuationToken, next != token else {
                    throw S3Error(kind: .invalidResponse, operation: "ListObjectsV2", bucket: bucket,
                                  message: "truncated listing without a new continuation token")
                }
                token = next
            } else {
                token = nil
            }
        } while token != nil
        return true
    }
}
