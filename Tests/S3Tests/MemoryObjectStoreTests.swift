/// `MemoryObjectStore`, `FaultInjectingStore` and `ObjectStore.listAll`, plus `withRetries`
/// driven by scripted S3 failures on a `ManualClock`.
import Foundation
import XCTest
import S3
import SoakTestSupport
import SoakCore

/// Byte order of the UTF-8 encoding: the order S3 lists keys in.
private func byteOrder(_ a: String, _ b: String) -> Bool {
    Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
}

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Collects what a GET streams to its sink.
private func getBytes(_ store: ObjectStore, bucket: String, key: String, range: ClosedRange<Int64>? = nil,
                      ifMatch: String? = nil) throws -> (GetResult, [UInt8]) {
    var got: [UInt8] = []
    let r = try store.get(bucket: bucket, key: key, range: range, ifMatch: ifMatch) { got.append(contentsOf: $0) }
    return (r, got)
}

/// Runs `body`, which must throw an `S3Error`, and returns it.
private func s3Error(file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) -> S3Error? {
    do {
        try body()
        XCTFail("expected an S3Error, nothing was thrown", file: file, line: line)
    } catch let e as S3Error {
        return e
    } catch {
        XCTFail("expected an S3Error, got \(error)", file: file, line: line)
    }
    return nil
}

/// An `ObjectStore` that answers listings from a script of pages and records the calls.
private final class ScriptedListStore: ObjectStore, @unchecked Sendable {
    // @unchecked: tests drive it from one thread.
    struct Call: Equatable {
        var prefix: String
        var delimiter: String?
        var token: String?
        var maxKeys: Int
    }
    var pages: [ListPage]
    private(set) var calls: [Call] = []

    init(_ pages: [ListPage]) { self.pages = pages }

    func listPage(bucket: String, prefix: String, delimiter: String?, continuationToken: String?,
                  maxKeys: Int) throws -> ListPage {
        calls.append(Call(prefix: prefix, delimiter: delimiter, token: continuationToken, maxKeys: maxKeys))
        guard !pages.isEmpty else {
            throw S3Error(kind: .invalidResponse, operation: "ListObjectsV2", bucket: bucket,
                          message: "stub: listed past the last scripted page")
        }
        return pages.removeFirst()
    }

    func head(bucket: String, key: String) throws -> ObjectInfo {
        throw S3Error(kind: .invalidResponse, operation: "HeadObject", bucket: bucket, key: key, message: "stub")
    }

    func get(bucket: String, key: String, range: ClosedRange<Int64>?, ifMatch: String?,
             sink: (UnsafeRawBufferPointer) throws -> Void) throws -> GetResult {
        throw S3Error(kind: .invalidResponse, operation: "GetObject", bucket: bucket, key: key, message: "stub")
    }
}

private func info(_ key: String) -> ObjectInfo { ObjectInfo(key: key, size: 1, etag: "e") }

final class MemoryObjectStoreTests: XCTestCase {
    // MARK: - Listing

    func testListAllPaginates2500KeysOnceEachInByteOrder() throws {
        let store = MemoryObjectStore()
        store.createBucket("b")
        // Keys whose byte order differs from naive expectations: upper case sorts before lower
        // case, `~` after letters, and multi-byte UTF-8 after all ASCII.
        var keys = (0..<2490).map { String(format: "data/%05d.bin", $0) }
        keys += ["data/Z", "data/a", "data/~", "data/ü", "data/é", "data/日本", "data/-", "data/_", "data/A b", "data/%2F"]
        XCTAssertEqual(Set(keys).count, 2500)
        var rng = SeededRandom(seed: 7)
        for k in keys.shuffled(using: &rng) { store.put(bucket: "b", key: k, bytes(k)) }
        store.put(bucket: "b", key: "other/outside-prefix", [1])

        var seen: [ObjectInfo] = []
        try store.listAll(bucket: "b", prefix: "data/", pageSize: 1000) { seen.append($0) }

        XCTAssertEqual(seen.count, 2500)
        XCTAssertEqual(seen.map(\.key), keys.sorted(by: byteOrder))
        XCTAssertEqual(Set(seen.map(\.key)).count, 2500, "a key was listed twice")
        // 1000 + 1000 + 500.
        XCTAssertEqual(store.calls["list"], 3)
        // Metadata travels with each key.
        let u = try XCTUnwrap(seen.first { $0.key == "data/ü" })
        XCTAssertEqual(u.size, Int64("data/ü".utf8.count))
        XCTAssertEqual(u.lastModified, 1_700_000_000)
    }

    /// With a first page size, pages grow four-fold to the page size; every key once, in order.
    func testListPagesRampFromAFirstPageSize() throws {
        let store = MemoryObjectStore()
        store.createBucket("b")
        let keys = (0..<2600).map { String(format: "k/%05d", $0) }
        for k in keys { store.put(bucket: "b", key: k, [1]) }
        var sizes: [Int] = []
        var seen: [String] = []
        let complete = try store.listPages(bucket: "b", prefix: "k/", pageSize: 1000, firstPageSize: 100) { page in
            sizes.append(page.objects.count)
            seen += page.objects.map(\.key)
            return true
        }
        XCTAssertTrue(complete)
        XCTAssertEqual(sizes, [100, 400, 1000, 1000, 100])
        XCTAssertEqual(seen, keys)
    }

    func testListPagesReportTruncationAndTokens() throws {
        let store = MemoryObjectStore()
        store.createBucket("b")
        for i in 0..<2500 { store.put(bucket: "b", key: String(format: "k%04d", i), [0]) }

        let p1 = try store.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 1000)
        XCTAssertEqual(p1.objects.count, 1000)
        XCTAssertTrue(p1.isTruncated)
        XCTAssertEqual(p1.objects.first?.key, "k0000")
        XCTAssertEqual(p1.objects.last?.key, "k0999")
        let t1 = try XCTUnwrap(p1.nextContinuationToken)

        let p2 = try store.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: t1, maxKeys: 1000)
        XCTAssertEqual(p2.objects.first?.key, "k1000")
        XCTAssertEqual(p2.objects.count, 1000)
        XCTAssertTrue(p2.isTruncated)
        let t2 = try XCTUnwrap(p2.nextContinuationToken)
        XCTAssertNotEqual(t1, t2)

        let p3 = try store.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: t2, maxKeys: 1000)
        XCTAssertEqual(p3.objects.count, 500)
        XCTAssertEqual(p3.objects.last?.key, "k2499")
        XCTAssertFalse(p3.isTruncated)
        XCTAssertNil(p3.nextContinuationToken)
    }

    func testExactlyOnePageIsNotTruncated() throws {
        let store = MemoryObjectStore()
        store.createBucket("b")
        for i in 0..<10 { store.put(bucket: "b", key: "k\(i)", [0]) }
        let p = try store.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 10)
        XCTAssertEqual(p.objects.count, 10)
        XCTAssertFalse(p.isTruncated)
        XCTAssertNil(p.nextContinuationToken)
    }

    func testPrefixIsAPlainStringPrefix() throws {
        let store = MemoryObjectStore()
        store.createBucket("b")
        for k in ["logs/a", "logs/sub/b", "logsX", "other/c", "log"] { store.put(bucket: "b", key: k, [1]) }

        var keys: [String] = []
        try store.listAll(bucket: "b", prefix: "logs/") { keys.append($0.key) }
        XCTAssertEqual(keys, ["logs/a", "logs/sub/b"])

        keys = []
        try store.listAll(bucket: "b", prefix: "logs") { keys.append($0.key) }
        XCTAssertEqual(keys, ["logs/a", "logs/sub/b", "logsX"])

        keys = []
        try store.listAll(bucket: "b", prefix: "nothing/") { keys.append($0.key) }
        XCTAssertEqual(keys, [])

        keys = []
        try store.listAll(bucket: "b", prefix: "") { keys.append($0.key) }
        XCTAssertEqual(keys, ["log", "logs/a", "logs/sub/b", "logsX", "other/c"])
    }

    func testDelimiterRollsUpCommonPrefixes() throws {
        let store = MemoryObjectStore()
        store.createBucket("b")
        for k in ["p/a.txt", "p/dir1/x", "p/dir1/deeper/y", "p/dir2/z", "p/b.txt", "q/other"] {
            store.put(bucket: "b", key: k, [1])
        }
        let page = try store.listPage(bucket: "b", prefix: "p/", delimiter: "/", continuationToken: nil, maxKeys: 1000)
        XCTAssertEqual(page.objects.map(\.key), ["p/a.txt", "p/b.txt"])
        XCTAssertEqual(page.commonPrefixes, ["p/dir1/", "p/dir2/"])
        XCTAssertFalse(page.isTruncated)

        // At the bucket root.
        let root = try store.listPage(bucket: "b", prefix: "", delimiter: "/", continuationToken: nil, maxKeys: 1000)
        XCTAssertEqual(root.objects, [])
        XCTAssertEqual(root.commonPrefixes, ["p/", "q/"])

        // Without a delimiter nothing is rolled up.
        let flat = try store.listPage(bucket: "b", prefix: "p/", delimiter: nil, continuationToken: nil, maxKeys: 1000)
        XCTAssertEqual(flat.commonPrefixes, [])
        XCTAssertEqual(flat.objects.count, 5)
    }

    func testDelimiterListingPaginatesWithoutLosingOrRepeatingEntries() throws {
        let store = MemoryObjectStore()
        store.createBucket("b")
        for k in ["p/a.txt", "p/dir1/x", "p/dir1/y", "p/dir1/z", "p/dir2/z", "p/e.txt", "p/f/1", "p/g.txt"] {
            store.put(bucket: "b", key: k, [1])
        }
        let expectedObjects = ["p/a.txt", "p/e.txt", "p/g.txt"]
        let expectedPrefixes = ["p/dir1/", "p/dir2/", "p/f/"]
        for pageSize in 1...7 {
            var objects: [String] = [], prefixes: [String] = []
            var token: String? = nil
            var pages = 0
            repeat {
                let p = try store.listPage(bucket: "b", prefix: "p/", delimiter: "/", continuationToken: token,
                                           maxKeys: pageSize)
                pages += 1
                XCTAssertLessThanOrEqual(p.objects.count + p.commonPrefixes.count, pageSize)
                objects += p.objects.map(\.key)
                prefixes += p.commonPrefixes
                if p.isTruncated {
                    let next = try XCTUnwrap(p.nextContinuationToken, "truncated page without a token (pageSize \(pageSize))")
                    XCTAssertNotEqual(next, token)
                    token = next
                } else {
                    token = nil
                }
            } while token != nil && pages < 20
            XCTAssertEqual(objects, expectedObjects, "pageSize \(pageSize)")
            XCTAssertEqual(prefixes, expectedPrefixes, "pageSize \(pageSize)")
            XCTAssertEqual(pages, (6 + pageSize - 1) / pageSize, "pageSize \(pageSize)")
        }
    }

    func testListingAMissingBucketIsNoSuchBucket() {
        let store = MemoryObjectStore()
        let e = s3Error { _ = try store.listPage(bucket: "nope", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 10) }
        XCTAssertEqual(e?.status, 404)
        XCTAssertEqual(e?.code, "NoSuchBucket")
        XCTAssertEqual(e?.bucket, "nope")
        XCTAssertEqual(e?.operation, "ListObjectsV2")
        XCTAssertEqual(e?.isRetryable, false)

        let viaListAll = s3Error { try store.listAll(bucket: "nope", prefix: "") { _ in XCTFail("no objects expected") } }
        XCTAssertEqual(viaListAll?.code, "NoSuchBucket")
    }

    func testEmptyBucketListsNothing() throws {
        let store = MemoryObjectStore()
        store.createBucket("empty")
        var n = 0
        try store.listAll(bucket: "empty", prefix: "") { _ in n += 1 }
        XCTAssertEqual(n, 0)
        XCTAssertEqual(store.calls["list"], 1)
    }

    func testDeleteRemovesFromListingAndGet() throws {
        let store = MemoryObjectStore()
        store.put(bucket: "b", key: "a", [1])
        store.put(bucket: "b", key: "b", [2])
        store.delete(bucket: "b", key: "a")
        var keys: [String] = []
        try store.listAll(bucket: "b", prefix: "") { keys.append($0.key) }
        XCTAssertEqual(keys, ["b"])
        XCTAssertEqual(s3Error { _ = try getBytes(store, bucket: "b", key: "a") }?.code, "NoSuchKey")
    }

    // MARK: - HEAD and GET

    func testETagIsTheMD5OfTheBytes() throws {
        let store = MemoryObjectStore()
        XCTAssertEqual(store.put(bucket: "b", key: "hello", bytes("hello")), "5d41402abc4b2a76b9719d911017c592")
        XCTAssertEqual(store.put(bucket: "b", key: "empty", []), "d41d8cd98f00b204e9800998ecf8427e")
        let h = try store.head(bucket: "b", key: "hello")
        XCTAssertEqual(h, ObjectInfo(key: "hello", size: 5, etag: "5d41402abc4b2a76b9719d911017c592",
                                     lastModified: 1_700_000_000))
        // Overwriting changes the ETag.
        let e2 = store.put(bucket: "b", key: "hello", bytes("hellO"), modified: 5)
        XCTAssertNotEqual(e2, h.etag)
        XCTAssertEqual(try store.head(bucket: "b", key: "hello").lastModified, 5)
    }

    func testHeadOfMissingKeyAndBucket() {
        let store = MemoryObjectStore()
        store.createBucket("b")
        let noKey = s3Error { _ = try store.head(bucket: "b", key: "missing") }
        XCTAssertEqual(noKey?.status, 404)
        XCTAssertEqual(noKey?.key, "missing")
        XCTAssertEqual(noKey?.operation, "HeadObject")
        let noBucket = s3Error { _ = try store.head(bucket: "nope", key: "k") }
        XCTAssertEqual(noBucket?.code, "NoSuchBucket")
        XCTAssertEqual(noBucket?.status, 404)
    }

    func testWholeGetStreamsEverything() throws {
        let store = MemoryObjectStore()
        let data = (0..<1000).map { UInt8($0 % 251) }
        let etag = store.put(bucket: "b", key: "k", data)
        let (r, got) = try getBytes(store, bucket: "b", key: "k")
        XCTAssertEqual(got, data)
        XCTAssertEqual(r, GetResult(status: 200, etag: etag, bytes: 1000, objectSize: 1000))
    }

    func testRangedGetReturnsExactlyTheRange() throws {
        let store = MemoryObjectStore()
        let data = bytes("0123456789")
        let etag = store.put(bucket: "b", key: "k", data)

        var (r, got) = try getBytes(store, bucket: "b", key: "k", range: 2...5)
        XCTAssertEqual(String(decoding: got, as: UTF8.self), "2345")
        XCTAssertEqual(r, GetResult(status: 206, etag: etag, bytes: 4, objectSize: 10))

        (r, got) = try getBytes(store, bucket: "b", key: "k", range: 0...0)
        XCTAssertEqual(got, bytes("0"))
        XCTAssertEqual(r.bytes, 1)

        (r, got) = try getBytes(store, bucket: "b", key: "k", range: 9...9)
        XCTAssertEqual(got, bytes("9"))

        // A range running past the end is clipped to the object, as S3 does.
        (r, got) = try getBytes(store, bucket: "b", key: "k", range: 7...100)
        XCTAssertEqual(got, bytes("789"))
        XCTAssertEqual(r.status, 206)
        XCTAssertEqual(r.bytes, 3)
        XCTAssertEqual(r.objectSize, 10)
    }

    func testIfMatchMismatchIs412AndDeliversNothing() throws {
        let store = MemoryObjectStore()
        let etag = store.put(bucket: "b", key: "k", bytes("abc"))
        var delivered = 0
        let e = s3Error {
            _ = try store.get(bucket: "b", key: "k", range: 0...1, ifMatch: "0000") { delivered += $0.count }
        }
        XCTAssertEqual(e?.status, 412)
        XCTAssertEqual(e?.code, "PreconditionFailed")
        XCTAssertEqual(e?.isPreconditionFailed, true)
        XCTAssertEqual(e?.isRetryable, false)
        XCTAssertEqual(delivered, 0)

        let (r, got) = try getBytes(store, bucket: "b", key: "k", range: 0...1, ifMatch: etag)
        XCTAssertEqual(got, bytes("ab"))
        XCTAssertEqual(r.etag, etag)

        // The object changes between listing and fetch.
        store.put(bucket: "b", key: "k", bytes("xyz"))
        XCTAssertEqual(s3Error { _ = try getBytes(store, bucket: "b", key: "k", ifMatch: etag) }?.status, 412)
    }

    func testRangeStartingAtOrPastTheEndIs416() {
        let store = MemoryObjectStore()
        store.put(bucket: "b", key: "k", bytes("0123456789"))
        for range: ClosedRange<Int64> in [10...10, 10...20, 1000...2000] {
            var delivered = 0
            let e = s3Error { _ = try store.get(bucket: "b", key: "k", range: range, ifMatch: nil) { delivered += $0.count } }
            XCTAssertEqual(e?.status, 416, "\(range)")
            XCTAssertEqual(e?.code, "InvalidRange", "\(range)")
            XCTAssertEqual(e?.isRetryable, false, "\(range)")
            XCTAssertEqual(delivered, 0)
        }
    }

    func testEmptyObject() throws {
        let store = MemoryObjectStore()
        store.put(bucket: "b", key: "empty", [])
        let (r, got) = try getBytes(store, bucket: "b", key: "empty")
        XCTAssertEqual(got, [])
        XCTAssertEqual(r.bytes, 0)
        XCTAssertEqual(r.objectSize, 0)
        XCTAssertEqual(try store.head(bucket: "b", key: "empty").size, 0)
    }

    func testGetOfMissingKeyAndBucket() {
        let store = MemoryObjectStore()
        store.createBucket("b")
        let noKey = s3Error { _ = try getBytes(store, bucket: "b", key: "missing") }
        XCTAssertEqual(noKey?.status, 404)
        XCTAssertEqual(noKey?.code, "NoSuchKey")
        XCTAssertEqual(noKey?.key, "missing")
        let noBucket = s3Error { _ = try getBytes(store, bucket: "nope", key: "k") }
        XCTAssertEqual(noBucket?.status, 404)
        XCTAssertEqual(noBucket?.code, "NoSuchBucket")
        XCTAssertEqual(noBucket?.operation, "GetObject")
    }

    func testSinkErrorPropagates() {
        struct Full: Error {}
        let store = MemoryObjectStore()
        store.put(bucket: "b", key: "k", [1, 2, 3])
        XCTAssertThrowsError(try store.get(bucket: "b", key: "k", range: nil, ifMatch: nil) { _ in throw Full() }) {
            XCTAssertTrue($0 is Full, "\($0)")
        }
    }

    func testCallsAreCountedPerOperation() throws {
        let store = MemoryObjectStore()
        store.put(bucket: "b", key: "k", [1])
        _ = try store.head(bucket: "b", key: "k")
        _ = try getBytes(store, bucket: "b", key: "k")
        _ = try getBytes(store, bucket: "b", key: "k", range: 0...0)
        _ = try? getBytes(store, bucket: "b", key: "missing")
        try store.listAll(bucket: "b", prefix: "") { _ in }
        XCTAssertEqual(store.calls, ["head": 1, "get": 3, "list": 1])
    }

    // MARK: - listAll against a scripted store

    func testListAllFollowsTokensAndPassesItsArguments() throws {
        let stub = ScriptedListStore([
            ListPage(objects: [info("a"), info("b")], isTruncated: true, nextContinuationToken: "t1"),
            ListPage(objects: [info("c")], isTruncated: true, nextContinuationToken: "t2"),
            ListPage(objects: [info("d")], isTruncated: false, nextContinuationToken: "ignored"),
        ])
        var keys: [String] = []
        try stub.listAll(bucket: "b", prefix: "pre/", pageSize: 2) { keys.append($0.key) }
        XCTAssertEqual(keys, ["a", "b", "c", "d"])
        XCTAssertEqual(stub.calls, [
            .init(prefix: "pre/", delimiter: nil, token: nil, maxKeys: 2),
            .init(prefix: "pre/", delimiter: nil, token: "t1", maxKeys: 2),
            .init(prefix: "pre/", delimiter: nil, token: "t2", maxKeys: 2),
        ])
        XCTAssertTrue(stub.pages.isEmpty)
    }

    func testListAllThrowsOnTruncatedPageWithoutToken() {
        let stub = ScriptedListStore([
            ListPage(objects: [info("a")], isTruncated: true, nextContinuationToken: nil),
            ListPage(objects: [info("never")]),
        ])
        var keys: [String] = []
        let e = s3Error { try stub.listAll(bucket: "bk", prefix: "") { keys.append($0.key) } }
        XCTAssertEqual(e?.kind, .invalidResponse)
        XCTAssertEqual(e?.operation, "ListObjectsV2")
        XCTAssertEqual(e?.bucket, "bk")
        XCTAssertEqual(keys, ["a"])
        XCTAssertEqual(stub.calls.count, 1, "must not restart the listing from the beginning")
    }

    func testListAllThrowsOnARepeatedToken() {
        // A server that keeps answering with the token it was given would loop forever.
        let stub = ScriptedListStore([
            ListPage(objects: [info("a")], isTruncated: true, nextContinuationToken: "same"),
            ListPage(objects: [info("b")], isTruncated: true, nextContinuationToken: "same"),
            ListPage(objects: [info("c")], isTruncated: true, nextContinuationToken: "same"),
        ])
        var keys: [String] = []
        let e = s3Error { try stub.listAll(bucket: "bk", prefix: "") { keys.append($0.key) } }
        XCTAssertEqual(e?.kind, .invalidResponse)
        XCTAssertEqual(stub.calls.map(\.token), [nil, "same"])
        XCTAssertEqual(keys, ["a", "b"])
    }

    func testListAllStopsWhenTheBodyThrows() {
        struct Stop: Error {}
        let stub = ScriptedListStore([
            ListPage(objects: [info("a"), info("b")], isTruncated: true, nextContinuationToken: "t"),
            ListPage(objects: [info("c")]),
        ])
        var keys: [String] = []
        XCTAssertThrowsError(try stub.listAll(bucket: "b", prefix: "") { keys.append($0.key); if $0.key == "a" { throw Stop() } }) {
            XCTAssertTrue($0 is Stop)
        }
        XCTAssertEqual(keys, ["a"])
        XCTAssertEqual(stub.calls.count, 1)
    }

    // MARK: - Fault injection and retries

    private func slowDown(_ message: String = "Please reduce your request rate.", retryAfter: Double? = 2) -> S3Error {
        S3Error(kind: .http, operation: "ListObjectsV2", bucket: "b", status: 503, code: "SlowDown",
                message: message, retryAfter: retryAfter)
    }

    private func seeded() -> MemoryObjectStore {
        let inner = MemoryObjectStore()
        for k in ["x/1", "x/2", "x/3"] { inner.put(bucket: "b", key: k, [1]) }
        return inner
    }

    func testFaultsAreThrownInOrderThenCallsPassThrough() throws {
        let inner = seeded()
        let denied = S3Error(kind: .http, operation: "HeadObject", bucket: "b", key: "x/1", status: 403,
                             code: "AccessDenied", message: "Access Denied")
        let store = FaultInjectingStore(inner, failures: [slowDown(), denied])
        XCTAssertEqual(s3Error { _ = try store.head(bucket: "b", key: "x/1") }, slowDown())
        XCTAssertEqual(s3Error { _ = try getBytes(store, bucket: "b", key: "x/1") }, denied)
        XCTAssertNil(inner.calls["head"], "a failed call must not reach the inner store")
        XCTAssertNil(inner.calls["get"])
        XCTAssertEqual(try store.head(bucket: "b", key: "x/1").size, 1)
        XCTAssertEqual(try getBytes(store, bucket: "b", key: "x/2").1, [1])
        XCTAssertEqual(inner.calls, ["head": 1, "get": 1])
    }

    func testListAllDoesNotRetryByItself() {
        let store = FaultInjectingStore(seeded(), failures: [slowDown()])
        XCTAssertEqual(s3Error { try store.listAll(bucket: "b", prefix: "x/") { _ in } }?.code, "SlowDown")
    }

    func testSlowDownTwiceThenSuccessSleepsAtLeastRetryAfter() throws {
        let inner = seeded()
        let store = FaultInjectingStore(inner, failures: [slowDown("first"), slowDown("second")])
        let clock = ManualClock(start: 100)
        var rng = SeededRandom(seed: 42)
        var attempts = 0
        var retries: [(attempt: Int, code: String?, wait: Double)] = []
        let policy = RetryPolicy(maxAttempts: 5, baseDelay: 0.1, maxDelay: 1)

        let page = try withRetries(policy: policy, clock: clock, random: &rng,
                                   isRetryable: { ($0 as? S3Error)?.isRetryable ?? false },
                                   retryAfter: { ($0 as? S3Error)?.retryAfter },
                                   onRetry: { n, e, d in retries.append((n, (e as? S3Error)?.code, d)) }) {
            attempts += 1
            return try store.listPage(bucket: "b", prefix: "x/", delimiter: nil, continuationToken: nil, maxKeys: 1000)
        }

        XCTAssertEqual(page.objects.map(\.key), ["x/1", "x/2", "x/3"])
        XCTAssertEqual(attempts, 3)
        XCTAssertEqual(inner.calls["list"], 1)
        XCTAssertEqual(retries.map(\.attempt), [1, 2])
        XCTAssertEqual(retries.map(\.code), ["SlowDown", "SlowDown"])
        // Retry-After 2 s outweighs the 0.1–0.2 s jitter window: each wait is at least 2 s.
        XCTAssertEqual(clock.sleeps.count, 2)
        for s in clock.sleeps { XCTAssertGreaterThanOrEqual(s, 2) }
        XCTAssertEqual(clock.sleeps, retries.map(\.wait))
        XCTAssertGreaterThanOrEqual(clock.totalSlept, 4)
        XCTAssertEqual(clock.now(), 100 + clock.totalSlept, accuracy: 1e-9)
    }

    func testForbiddenIsNotRetried() {
        let inner = seeded()
        let denied = S3Error(kind: .http, operation: "ListObjectsV2", bucket: "b", status: 403,
                             code: "AccessDenied", message: "Access Denied")
        let store = FaultInjectingStore(inner, failures: [denied])
        let clock = ManualClock()
        var rng = SeededRandom(seed: 1)
        var attempts = 0
        var retried = false
        let e = s3Error {
            _ = try withRetries(policy: RetryPolicy(maxAttempts: 5, baseDelay: 0.1, maxDelay: 1), clock: clock,
                                random: &rng, isRetryable: { ($0 as? S3Error)?.isRetryable ?? false },
                                retryAfter: { ($0 as? S3Error)?.retryAfter },
                                onRetry: { _, _, _ in retried = true }) {
                attempts += 1
                return try store.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 10)
            }
        }
        XCTAssertEqual(e, denied)
        XCTAssertEqual(attempts, 1)
        XCTAssertFalse(retried)
        XCTAssertEqual(clock.sleeps, [])
        XCTAssertNil(inner.calls["list"])
    }

    func testExhaustedAttemptsRethrowTheLastError() {
        let inner = seeded()
        let failures = [
            S3Error(kind: .http, operation: "GetObject", bucket: "b", key: "x/1", status: 500,
                    code: "InternalError", message: "one"),
            S3Error(kind: .transport(curlCode: 56), operation: "GetObject", bucket: "b", key: "x/1", message: "two"),
            slowDown("three", retryAfter: 1),
            S3Error(kind: .http, operation: "GetObject", bucket: "b", key: "x/1", status: 500, message: "four (never)"),
        ]
        let store = FaultInjectingStore(inner, failures: failures)
        let clock = ManualClock()
        var rng = SeededRandom(seed: 9)
        var attempts = 0
        let e = s3Error {
            _ = try withRetries(policy: RetryPolicy(maxAttempts: 3, baseDelay: 0.5, maxDelay: 4), clock: clock,
                                random: &rng, isRetryable: { ($0 as? S3Error)?.isRetryable ?? false },
                                retryAfter: { ($0 as? S3Error)?.retryAfter }) {
                attempts += 1
                return try getBytes(store, bucket: "b", key: "x/1")
            }
        }
        XCTAssertEqual(attempts, 3)
        XCTAssertEqual(e, failures[2], "the last error must be rethrown unchanged")
        XCTAssertEqual(clock.sleeps.count, 2, "no sleep after the final attempt")
        XCTAssertLessThanOrEqual(clock.sleeps[0], 0.5)
        XCTAssertLessThanOrEqual(clock.sleeps[1], 1.0)
        XCTAssertNil(inner.calls["get"])
        // The unused fault is still queued: the next call gets it.
        XCTAssertEqual(s3Error { _ = try getBytes(store, bucket: "b", key: "x/1") }?.message, "four (never)")
    }
}
