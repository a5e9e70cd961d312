@testable import Cache
import Foundation
import Logging
import S3
import SoakTestSupport
import SoakCore
import XCTest
@testable import Engine

/// A 412 on If-Match is a question: `VersionChecker` HEADs the key (memory and fault-injecting
/// stores), the engine retries an order whose ETag HEAD confirms (fake workers that answer 412
/// once), and `CacheFiller` keeps or drops blocks by the answer.
final class VersionCheckTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "soak-version-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private let fast = RetryPolicy(maxAttempts: 4, baseDelay: 0, maxDelay: 0)

    private func store() -> MemoryObjectStore {
        let s = MemoryObjectStore()
        s.createBucket("b")
        return s
    }

    // MARK: - VersionChecker

    func testSameETagIsUnchanged() {
        let s = store()
        let etag = s.put(bucket: "b", key: "k", Array("one".utf8))
        let v = VersionChecker(store: s, retry: fast, logger: Logger(label: "t"))
        XCTAssertEqual(v.check(bucket: "b", key: "k", etag: etag), .unchanged)
        XCTAssertEqual(v.check(bucket: "b", key: "k", etag: etag), .unchanged, "an unchanged answer is asked again")
        XCTAssertEqual(s.calls["head"], 2)
    }

    func testNewETagIsChangedAndRememberedForTheOldOne() {
        let s = store()
        let old = s.put(bucket: "b", key: "k", Array("one".utf8))
        let new = s.put(bucket: "b", key: "k", Array("second".utf8))
        let v = VersionChecker(store: s, retry: fast, logger: Logger(label: "t"))
        guard case .changed(let now) = v.check(bucket: "b", key: "k", etag: old) else { return XCTFail() }
        XCTAssertEqual(now.etag, new)
        XCTAssertEqual(now.size, 6)
        // The other parts of the old version hear the same without another HEAD.
        XCTAssertEqual(v.check(bucket: "b", key: "k", etag: old), .changed(now))
        XCTAssertEqual(s.calls["head"], 1)
        XCTAssertEqual(v.check(bucket: "b", key: "k", etag: new), .unchanged)
    }

    func testMissingKeyIsGone() {
        let s = store()
        let etag = s.put(bucket: "b", key: "k", [1])
        s.delete(bucket: "b", key: "k")
        let v = VersionChecker(store: s, retry: fast, logger: Logger(label: "t"))
        XCTAssertEqual(v.check(bucket: "b", key: "k", etag: etag), .gone)
        XCTAssertTrue(VersionAnswer.gone.failureReason(listedETag: etag).contains("deleted since it was listed"))
    }

    func testHeadIsRetriedOnRetryableErrorsOnly() {
        let s = store()
        let etag = s.put(bucket: "b", key: "k", [1, 2])
        let slow = S3Error(kind: .http, operation: "HeadObject", bucket: "b", key: "k", status: 503, code: "SlowDown", message: "slow")
        let faulty = FaultInjectingStore(s, failures: [slow, slow])
        let v = VersionChecker(store: faulty, retry: fast, logger: Logger(label: "t"))
        XCTAssertEqual(v.check(bucket: "b", key: "k", etag: etag), .unchanged, "two 503s, then the answer")
        XCTAssertEqual(s.calls["head"], 1)

        let denied = S3Error(kind: .http, operation: "HeadObject", bucket: "b", key: "k", status: 403, code: "AccessDenied", message: "no")
        let v2 = VersionChecker(store: FaultInjectingStore(s, failures: [denied]), retry: fast, logger: Logger(label: "t"))
        XCTAssertEqual(v2.check(bucket: "b", key: "k", etag: etag), .unknown(denied), "a 403 is not retried")
        XCTAssertEqual(s.calls["head"], 1)
        XCTAssertEqual(v2.check(bucket: "b", key: "k", etag: etag), .unchanged, "a failed HEAD is not remembered")
    }

    // MARK: - The engine: a 412 parks the order until HEAD answers

    /// A worker (shell script) that answers its orders with the given report lines, one per
    /// order in turn, then lingers.
    private func worker(_ reports: [FromWorker]) throws -> String {
        var body = "#!/bin/sh\nread cfg\n"
        for (i, r) in reports.enumerated() {
            let path = dir + "/report\(i)"
            try Data(LineCodec.encode(r)).write(to: URL(fileURLWithPath: path))
            body += "read order\ncat \(path)\n"
        }
        body += "sleep 30\n"
        let exe = dir + "/worker.sh"
        try body.write(toFile: exe, atomically: true, encoding: .utf8)
        chmod(exe, 0o755)
        return exe
    }

    private func preconditionFailed() -> S3Error {
        S3Error(kind: .http, operation: "GetObject", bucket: "b", key: "k", status: 412, code: "PreconditionFailed",
                message: "At least one of the pre-conditions you specified did not hold")
    }

    private final class Box: @unchecked Sendable {
        let cond = NSCondition()
        var completions: [FetchCompletion] = []
        func add(_ c: FetchCompletion) { cond.lock(); completions.append(c); cond.broadcast(); cond.unlock() }
        func wait(seconds: Double) -> [FetchCompletion] {
            cond.lock(); defer { cond.unlock() }
            let deadline = Date().addingTimeInterval(seconds)
            while completions.isEmpty && cond.wait(until: deadline) {}
            return completions
        }
    }

    /// One order for `k` at `etag` through an engine whose worker answers `reports`.
    private func runOne(_ reports: [FromWorker], etag: String, attempts: Int, checker: VersionChecker?)
        throws -> (FetchCompletion?, EngineStats) {
        var settings = EngineSettings()
        settings.retry = RetryPolicy(maxAttempts: attempts, baseDelay: 0.01, maxDelay: 0.02)
        settings.hangTimeout = 20
        let builder = S3RequestBuilder(endpoint: try S3Endpoint(url: "http://127.0.0.1:9", region: "us-east-1"),
                                       credentials: Credentials(accessKeyId: "k", secretAccessKey: "s"))
        let box = Box()
        let e = FetchEngine(settings: settings, workerExecutable: try worker(reports), builder: builder,
                            logger: Logger(label: "t")) { box.add($0) }
        e.versionCheck = checker
        try e.start()
        e.submit(bucket: "b", key: "k", etag: etag, range: 0...9, path: dir + "/out", fileOffset: 0, tag: 3)
        let got = box.wait(seconds: 20)
        usleep(100_000)  // nothing else may complete
        let stats = e.snapshot()
        e.stop()
        XCTAssertLessThanOrEqual(box.completions.count, 1, "one completion per order")
        return (got.first, stats)
    }

    func testStray412WithTheSameETagIsRetried() throws {
        let s = store()
        let etag = s.put(bucket: "b", key: "k", Array(repeating: 7, count: 10))
        let checker = VersionChecker(store: s, retry: fast, logger: Logger(label: "t"))
        let (c, stats) = try runOne([.done(FetchReport(id: 1, bytes: 0, error: preconditionFailed(), firstByteLatency: nil)),
                                     .done(FetchReport(id: 1, bytes: 10, error: nil, firstByteLatency: 0.001))],
                                    etag: etag, attempts: 3, checker: checker)
        let done = try XCTUnwrap(c, "the order completes")
        XCTAssertNil(done.error, "a 412 whose ETag HEAD confirms is retried, not failed")
        XCTAssertEqual(done.tag, 3)
        XCTAssertEqual(stats.retries, 1, "the retry is counted like any other")
        XCTAssertEqual(checker.heads, 1)
    }

    func testStray412sCountAgainstTheAttempts() throws {
        let s = store()
        let etag = s.put(bucket: "b", key: "k", Array(repeating: 7, count: 10))
        let checker = VersionChecker(store: s, retry: fast, logger: Logger(label: "t"))
        let r412 = FromWorker.done(FetchReport(id: 1, bytes: 0, error: preconditionFailed(), firstByteLatency: nil))
        let (c, _) = try runOne([r412, r412], etag: etag, attempts: 2, checker: checker)
        let done = try XCTUnwrap(c)
        XCTAssertEqual(done.error?.status, 412, "two attempts, two 412s: the order fails")
        XCTAssertEqual(done.error?.attempts, 2, "and its error names the attempts")
        XCTAssertEqual(done.version, .unchanged)
        XCTAssertEqual(checker.heads, 2)
    }

    func testA412WithANewVersionCompletesWithIt() throws {
        let s = store()
        let old = s.put(bucket: "b", key: "k", Array(repeating: 7, count: 10))
        let new = s.put(bucket: "b", key: "k", Array(repeating: 8, count: 12))
        let checker = VersionChecker(store: s, retry: fast, logger: Logger(label: "t"))
        let (c, stats) = try runOne([.done(FetchReport(id: 1, bytes: 0, error: preconditionFailed(), firstByteLatency: nil))],
                                    etag: old, attempts: 5, checker: checker)
        let done = try XCTUnwrap(c)
        XCTAssertEqual(done.error?.status, 412)
        guard case .changed(let now)? = done.version else { return XCTFail("\(String(describing: done.version))") }
        XCTAssertEqual(now.etag, new)
        XCTAssertEqual(stats.retries, 0, "the old version is not fetched again")
    }

    func testWithoutACheckerA412FailsAtOnce() throws {
        let (c, _) = try runOne([.done(FetchReport(id: 1, bytes: 0, error: preconditionFailed(), firstByteLatency: nil))],
                                etag: "x", attempts: 5, checker: nil)
        let done = try XCTUnwrap(c)
        XCTAssertEqual(done.error?.status, 412)
        XCTAssertNil(done.version)
    }

    // MARK: - CacheFiller: blocks kept or dropped by the answer

    private func filler() throws -> (DiskCache, CachedObject, CacheFillerTests.FakeEngine, CacheFiller) {
        let c = try DiskCache(directory: dir + "/cache")
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let o = try c.index.recordListing(bucketID: b, objects: [ObjectInfo(key: "k", size: 3 * c.blockSize, etag: "x")],
                                          stamp: 1).objects[0]
        let fake = CacheFillerTests.FakeEngine()
        return (c, o, fake, CacheFiller(cache: c, submitter: fake, logger: Logger(label: "t")))
    }

    /// Fills `o`, writes its first block and completes the one order with a 412, one block of
    /// it landed, and HEAD's `answer`.
    private func fill412(_ answer: VersionAnswer) throws -> (FillError?, CachedObject?, CachedObject) {
        let (c, o, fake, f) = try filler()
        defer { f.stop() }
        let r = CacheFillerTests.Results()
        f.fill(o, bucket: "b", lane: .bulk) { r.add($0, $1) }
        let sub = try XCTUnwrap(fake.all.first)
        let block = [UInt8](repeating: 5, count: Int(c.blockSize))
        let fd = open(sub.path, O_WRONLY | O_CREAT, 0o644)
        _ = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        close(fd)
        let order = FetchOrder(id: sub.id, bucket: "b", key: "k", etag: "x", start: sub.range.lowerBound,
                               end: sub.range.upperBound, path: sub.path, fileOffset: 0)
        f.completed(FetchCompletion(order: order, tag: sub.tag, error: preconditionFailed(),
                                    crcs: [CRC32C.checksum(block)], version: answer))
        let res = r.wait(for: 1)
        return (res.first?.1, try c.index.object(id: o.id), o)
    }

    func testFillerKeepsBlocksWhenHEADConfirmsTheVersion() throws {
        let (err, row, o) = try fill412(.unchanged)
        guard case .local(let why)? = err else { return XCTFail("\(String(describing: err))") }
        XCTAssertTrue(why.contains("unchanged"), why)
        XCTAssertEqual(row?.gen, o.gen, "same version: not dropped")
        XCTAssertEqual(row?.cachedBytes, CacheFormat.blockSize, "the block that landed is recorded")
    }

    func testFillerDropsTheOldVersionAndNamesTheNewOne() throws {
        let now = ObjectInfo(key: "k", size: 5, etag: "y")
        let (err, row, o) = try fill412(.changed(now))
        guard case .replaced(_, let got)? = err else { return XCTFail("\(String(describing: err))") }
        XCTAssertEqual(got, now)
        XCTAssertEqual(row?.gen, o.gen + 1, "the old version's blocks are dropped")
        XCTAssertEqual(row?.cachedBytes, 0)
    }

    func testFillerDropsADeletedObject() throws {
        let (err, row, o) = try fill412(.gone)
        guard case .deleted? = err else { return XCTFail("\(String(describing: err))") }
        XCTAssertEqual(row?.gen, o.gen + 1)
        XCTAssertTrue(err?.description.contains("deleted since it was listed") ?? false)
    }
}
