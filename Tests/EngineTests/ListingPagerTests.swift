import Foundation
import Logging
import S3
import SoakTestSupport
import SoakCore
import XCTest
@testable import Engine

/// Listing retries are not failures: they are logged at debug level only, and a page that runs
/// out of attempts fails with an error naming them.
final class ListingPagerTests: XCTestCase {
    /// Collects log lines with their levels.
    final class Captured: @unchecked Sendable {
        let lock = NSLock()
        var lines: [(Logger.Level, String)] = []
        func add(_ l: Logger.Level, _ m: String) { lock.lock(); lines.append((l, m)); lock.unlock() }
        func at(_ level: Logger.Level) -> [String] { lock.lock(); defer { lock.unlock() }; return lines.filter { $0.0 == level }.map(\.1) }
        var aboveDebug: [String] { lock.lock(); defer { lock.unlock() }; return lines.filter { $0.0 > .debug }.map(\.1) }
    }

    struct CapturingHandler: LogHandler {
        let sink: Captured
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { sink.add(event.level, "\(event.message)") }
    }

    let captured = Captured()
    var logger: Logger { Logger(label: "test") { [captured] _ in CapturingHandler(sink: captured) } }

    func store(failures: [S3Error]) -> ObjectStore {
        let m = MemoryObjectStore()
        m.createBucket("b")
        for i in 0..<3 { _ = m.put(bucket: "b", key: "p/\(i)", [UInt8(i)]) }
        return FaultInjectingStore(m, failures: failures)
    }

    func refused() -> S3Error {
        S3Error(kind: .transport(curlCode: 7), operation: "ListObjectsV2", bucket: "b", message: "connection refused")
    }

    func list(_ s: ObjectStore, attempts: Int) throws -> [String] {
        var keys: [String] = []
        _ = try ListingPager.run(store: s, bucket: "b", prefix: "p/", retry: RetryPolicy(maxAttempts: attempts, baseDelay: 0, maxDelay: 0),
                                 logger: logger) { keys += $0.objects.map(\.key) }
        return keys
    }

    func testRetriesThatSucceedLogAtDebugOnly() throws {
        let keys = try list(store(failures: [refused(), refused(), refused()]), attempts: 4)
        XCTAssertEqual(keys, ["p/0", "p/1", "p/2"])
        XCTAssertEqual(captured.aboveDebug, [], "a retry is not a failure")
        XCTAssertEqual(captured.at(.debug).count, 3)
        XCTAssertTrue(captured.at(.debug).allSatisfy { $0.contains("retrying") })
    }

    func testRunningOutOfAttemptsNamesThem() {
        XCTAssertThrowsError(try list(store(failures: Array(repeating: refused(), count: 4)), attempts: 4)) { e in
            let s3 = e as? S3Error
            XCTAssertEqual(s3?.attempts, 4)
            XCTAssertEqual(s3?.description, "ListObjectsV2 s3://b failed after 4 attempts: connection refused")
        }
        XCTAssertEqual(captured.aboveDebug, [])
    }

    /// A failure that is not retried is the first attempt's, and says nothing of attempts.
    func testAnAnswerThatIsNotRetriedIsUnchanged() {
        let denied = S3Error(kind: .http, operation: "ListObjectsV2", bucket: "b", status: 403, code: "AccessDenied",
                             message: "Access Denied")
        XCTAssertThrowsError(try list(store(failures: [denied]), attempts: 4)) { XCTAssertEqual($0 as? S3Error, denied) }
        // After retries, a final answer that is not retryable still counts them.
        XCTAssertThrowsError(try list(store(failures: [refused(), denied]), attempts: 4)) {
            XCTAssertEqual(($0 as? S3Error)?.attempts, 2)
            XCTAssertEqual(($0 as? S3Error)?.status, 403)
        }
    }
}
