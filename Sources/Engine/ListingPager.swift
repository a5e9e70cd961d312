import Logging
import S3
import SoakCore

/// `ObjectStore.listPages` with each page retried with backoff (`RetryPolicy`, Retry-After
/// honoured) and a stop check between pages. Shared by download, prewarm and mount, which
/// handle objects page by page so work starts before the listing ends. A retry is logged at
/// debug level only: a retry is not a failure, and a page that runs out of attempts fails with
/// an error naming them.
public enum ListingPager {
    /// Keys asked for in the first page (then 400, then 1000 a page): work starts on the first
    /// page, and a small page is answered much sooner than a full one (docs/BENCHMARKS.md,
    /// listings).
    public static let firstPageSize = 100

    /// Returns false when `shouldStop` ended the listing early (it is asked before each page).
    public static func run(store: ObjectStore, bucket: String, prefix: String, delimiter: String? = nil,
                           retry: RetryPolicy, logger: Logger,
                           shouldStop: () -> Bool = { false }, page handle: (ListPage) throws -> Void) throws -> Bool {
        if shouldStop() { return false }
        var random = SystemRandomNumberGenerator()
        return try store.listPages(bucket: bucket, prefix: prefix, delimiter: delimiter, firstPageSize: firstPageSize,
                                   fetch: { request in
            var failed = 0
            do {
                return try withRetries(
                    policy: retry, clock: SystemClock(), random: &random,
                    isRetryable: { ($0 as? S3Error)?.isRetryable ?? false },
                    retryAfter: { ($0 as? S3Error)?.retryAfter },
                    onRetry: { n, e, d in
                        failed = n
                        logger.debug("listing attempt \(n) failed, retrying in \(String(format: "%.2f", d)) s: \(e)")
                    }, request)
            } catch var e as S3Error where failed > 0 {
                e.attempts = failed + 1
                throw e
            }
        }) { page in
            try handle(page)
            return !shouldStop()
        }
    }
}
