@testable import Cache
import Foundation
import Logging
import S3
import SoakCore
import SoakTestSupport
import Synchronization
import XCTest
@testable import Engine

/// What a fill answers when the bucket changes while an earlier fetch of the same blocks is
/// still on its way to the committer: over a real `FetchEngine` and a `StoreTransport` on a
/// `MemoryObjectStore`, with the committer held so the window is not left to timing.
final class FillAnswerTests: XCTestCase {
    private var dir = ""
    private let bucket = StoreFixture.bucket

    override func setUpWithError() throws { dir = try StoreFixture.temporaryDirectory("fill-answer") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Holds every commit until it is opened.
    final class Gate: Sendable {
        private let group = DispatchGroup()
        private let opened = Mutex(false)
        init() { group.enter() }
        func pass() { _ = group.wait(timeout: .now() + 20) }
        func open() { if opened.withLock({ o in defer { o = true }; return !o }) { group.leave() } }
    }

    /// A read's fetch fails (the key was deleted: 404) and its reader hears so at once; the
    /// commit that clears the failed job is still to come when the key is put again. A read
    /// made now must be answered for the bucket as it is now (a 412: the listed version is
    /// gone, the key is not), not with the earlier 404 by joining the failed fetch.
    func testAReadAfterABucketChangeIsNotAnsweredWithAnEarlierFailedFetch() throws {
        let store = StoreFixture.store(["k": StoreFixture.content(5000)])
        let cache = try DiskCache(directory: dir + "/cache")
        let b = try cache.index.bucketID(endpoint: "e", name: bucket)
        var listed: [ObjectInfo] = []
        try store.listAll(bucket: bucket, prefix: "") { listed.append($0) }
        let o = try XCTUnwrap(cache.index.recordListing(bucketID: b, objects: listed, stamp: 1).objects.first)
        let engine = FetchEngine(settings: StoreFixture.settings(attempts: 1), transport: StoreTransport(store: store),
                                 logger: Logger(label: "test"))
        let filler = CacheFiller(cache: cache, submitter: engine, logger: Logger(label: "test"))
        let gate = Gate()
        filler.beforeCommit = { _ in gate.pass() }
        try engine.start(reportingTo: filler)
        defer { gate.open(); engine.stop(); filler.stop() }

        store.delete(bucket: bucket, key: "k")
        let first = FillResults()
        filler.fill(o, bucket: bucket, blocks: [0], lane: .urgent, whenLanded: true) { first.add($0, $1) }
        let firstAnswer = try XCTUnwrap(first.wait(for: 1).first?.1, "the fetch of a deleted key fails")
        guard case .fetch(let e) = firstAnswer, e.status == 404 else { return XCTFail("first answer: \(firstAnswer)") }

        store.put(bucket: bucket, key: "k", StoreFixture.content(6000, seed: 2))
        let second = FillResults()
        filler.fill(o, bucket: bucket, blocks: [0], lane: .urgent, whenLanded: true) { second.add($0, $1) }
        // Without the fix this read waits on the held commit of the failed fetch: let it go.
        usleep(50_000)
        gate.open()
        let answer = try XCTUnwrap(second.wait(for: 1).first, "the second read is answered")
        switch answer.1 {
        case .changed?, .replaced?: break  // the listed version is gone; the key is there
        case let other: XCTFail("a read after the key came back was answered \(String(describing: other))")
        }
    }
}
