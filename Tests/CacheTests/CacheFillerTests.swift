@testable import Cache
import Foundation
import Logging
import S3
import SoakCore
import XCTest
@testable import Engine

/// The fill scheduler against a fake engine: each block is fetched once, a second request waits
/// on the first (and promotes it), runs are cut at the run size, MD5 and 412 handling.
final class CacheFillerTests: XCTestCase {
    private var dir = ""
    private let bs = CacheFormat.blockSize

    override func setUpWithError() throws { dir = NSTemporaryDirectory() + "soak-filler-\(UUID().uuidString.prefix(8))" }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Records submissions; the test completes them by writing the bytes and calling back.
    final class FakeEngine: FetchSubmitter, @unchecked Sendable {
        struct Sub { var id: Int; var range: ClosedRange<Int64>; var path: String; var lane: Lane; var tag: Int }
        let lock = NSLock()
        var subs: [Sub] = []
        var promotions: [(Int, Lane)] = []
        func submit(bucket: String, key: String, etag: String?, range: ClosedRange<Int64>, path: String, fileOffset: Int64,
                    publish: PublishSpec?, blockSize: Int64?, lane: Lane, tag: Int) -> Int {
            lock.lock(); defer { lock.unlock() }
            subs.append(Sub(id: subs.count + 1, range: range, path: path, lane: lane, tag: tag))
            return subs.count
        }
        func promote(_ id: Int, to lane: Lane) -> Bool {
            lock.lock(); promotions.append((id, lane)); lock.unlock(); return true
        }
        /// Whether queued fetches can be taken back (as if no worker had them yet).
        var withdrawable = false
        var withdrawn: [Int] = []
        func withdraw(_ id: Int) -> Bool {
            lock.lock(); defer { lock.unlock() }
            guard withdrawable else { return false }
            withdrawn.append(id)
            return true
        }
        var all: [Sub] { lock.lock(); defer { lock.unlock() }; return subs }
    }

    final class Locked<T>: @unchecked Sendable {
        private let lock = NSLock()
        private var v: T
        init(_ v: T) { self.v = v }
        var value: T {
            get { lock.lock(); defer { lock.unlock() }; return v }
            set { lock.lock(); v = newValue; lock.unlock() }
        }
    }

    final class Results: @unchecked Sendable {
        let cond = NSCondition()
        var done: [(Int64, FillError?)] = []
        func add(_ o: CachedObject, _ e: FillError?) { cond.lock(); done.append((o.id, e)); cond.broadcast(); cond.unlock() }
        func wait(for n: Int) -> [(Int64, FillError?)] {
            cond.lock(); defer { cond.unlock() }
            let deadline = Date().addingTimeInterval(10)
            while done.count < n && cond.wait(until: deadline) {}
            return done
        }
    }

    private func setup(sizes: [Int64], etag: String = "x") throws -> (DiskCache, [CachedObject], FakeEngine, CacheFiller) {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let objs = try c.index.recordListing(bucketID: b, objects: sizes.enumerated().map {
            ObjectInfo(key: "k\($0.offset)", size: $0.element, etag: etag) }, stamp: 1).objects
        let fake = FakeEngine()
        return (c, objs, fake, CacheFiller(cache: c, submitter: fake, logger: Logger(label: "test")))
    }

    private func content(_ n: Int64) -> [UInt8] { (0..<Int(n)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) } }

    /// Plays the worker: writes the submitted range of `data` and reports CRCs (and MD5).
    private func complete(_ f: CacheFiller, _ s: FakeEngine.Sub, _ data: [UInt8], error: S3Error? = nil) {
        let fd = open(s.path, O_WRONLY | O_CREAT, 0o644)
        let slice = Array(data[Int(s.range.lowerBound)...Int(s.range.upperBound)])
        _ = slice.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(s.range.lowerBound)) }
        close(fd)
        var crcs: [UInt32] = []
        var off = 0
        while off < slice.count {
            let n = min(Int(bs), slice.count - off)
            crcs.append(CRC32C.checksum(Array(slice[off..<(off + n)])))
            off += n
        }
        let order = FetchOrder(id: s.id, bucket: "b", key: "k", etag: nil, start: s.range.lowerBound, end: s.range.upperBound,
                               path: s.path, fileOffset: s.range.lowerBound)
        f.completed(FetchCompletion(order: order, tag: s.tag, error: error, crcs: error == nil ? crcs : []))
    }

    func testEachBlockIsFetchedOnceAndASecondRequestWaitsAndPromotes() throws {
        let (c, objs, fake, f) = try setup(sizes: [20 * bs + 5])
        defer { f.stop() }
        let o = objs[0]
        let r = Results()
        f.fill(o, bucket: "b", lane: .bulk) { r.add($0, $1) }
        // 21 blocks in runs of at most 8.
        XCTAssertEqual(fake.all.map(\.range.lowerBound), [0, 8 * bs, 16 * bs])
        XCTAssertEqual(fake.all.map(\.range.upperBound), [8 * bs - 1, 16 * bs - 1, 20 * bs + 4])
        XCTAssertTrue(fake.all.allSatisfy { $0.lane == .bulk })
        // A mount read of block 9 while it is queued: no new fetch, the fetch holding it is promoted.
        f.fill(o, bucket: "b", blocks: [9], lane: .urgent) { r.add($0, $1) }
        XCTAssertEqual(fake.all.count, 3, "a block on its way is not fetched again")
        XCTAssertEqual(fake.promotions.map(\.0), [2])
        XCTAssertEqual(fake.promotions.map(\.1), [.urgent])
        XCTAssertEqual(f.pendingBlocks, 21)

        let data = content(o.size)
        complete(f, fake.all[1], data)
        let first = r.wait(for: 1)
        XCTAssertEqual(first.count, 1, "the urgent read is answered when its block is recorded")
        XCTAssertNil(first[0].1)
        XCTAssertEqual(try c.read(o, offset: 9 * bs, count: 10), Array(data[Int(9 * bs)..<Int(9 * bs + 10)]))
        complete(f, fake.all[0], data)
        complete(f, fake.all[2], data)
        XCTAssertEqual(r.wait(for: 2).count, 2)
        XCTAssertEqual(try c.index.object(id: o.id)?.cachedBytes, o.size)
        XCTAssertEqual(f.pendingBlocks, 0)
        // Everything present: a new fill submits nothing and answers at once.
        f.fill(o, bucket: "b", lane: .bulk) { r.add($0, $1) }
        XCTAssertEqual(r.wait(for: 3).count, 3)
        XCTAssertEqual(fake.all.count, 3)
    }

    func testLandedBlocksWaitForABatchButNotWhenNothingElseIsOnItsWay() throws {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let objs = try c.index.recordListing(bucketID: b, objects: (0..<3).map {
            ObjectInfo(key: "k\($0)", size: 1000, etag: "x") }, stamp: 1).objects
        let fake = FakeEngine()
        // A batch interval far longer than the test's waits.
        let f = CacheFiller(cache: c, submitter: fake, logger: Logger(label: "test"), commitInterval: 600)
        defer { f.stop() }
        let r = Results()
        for o in objs { f.fill(o, bucket: "b", lane: .bulk) { r.add($0, $1) } }
        XCTAssertEqual(fake.all.count, 3)
        let data = content(1000)
        complete(f, fake.all[0], data)
        XCTAssertEqual(r.wait(for: 1).count, 1, "the first landing is committed at once")
        complete(f, fake.all[1], data)
        usleep(300_000)
        XCTAssertEqual(r.done.count, 1, "a landing waits for the batch while another fetch is on its way")
        complete(f, fake.all[2], data)
        let all = r.wait(for: 3)
        XCTAssertEqual(all.count, 3, "once nothing else is on its way, what landed is committed without waiting out the interval")
        XCTAssertTrue(all.allSatisfy { $0.1 == nil })
        for o in objs { XCTAssertEqual(try c.index.object(id: o.id)?.cachedBytes, 1000) }
    }

    func testNoShortTailRun() throws {
        // 10 and 12 blocks: one request each (a tail of up to half a run joins the run before);
        // 13: 8 + 5.
        let (_, objs, fake, f) = try setup(sizes: [10 * bs, 12 * bs, 13 * bs - 7])
        defer { f.stop() }
        for o in objs { f.fill(o, bucket: "b", lane: .bulk) { _, _ in } }
        XCTAssertEqual(fake.all.map { ($0.range.upperBound - $0.range.lowerBound + 1 + bs - 1) / bs }, [10, 12, 8, 5])
    }

    func testAnUrgentReadSplitsAQueuedRunInsteadOfWaitingForAllOfIt() throws {
        let (c, objs, fake, f) = try setup(sizes: [24 * bs])
        defer { f.stop() }
        fake.withdrawable = true
        let o = objs[0]
        let data = content(o.size)
        let r = Results()
        f.fill(o, bucket: "b", lane: .bulk) { r.add($0, $1) }
        XCTAssertEqual(fake.all.count, 3)
        f.fill(o, bucket: "b", blocks: [9, 10], lane: .urgent, whenLanded: true) { r.add($0, $1) }
        // Run 8…15 was taken back and split: 8 (bulk), 9…10 (urgent), 11…15 (bulk).
        XCTAssertEqual(fake.withdrawn, [2])
        let after = Array(fake.all.dropFirst(3))
        XCTAssertEqual(after.map(\.range.lowerBound), [8 * bs, 9 * bs, 11 * bs])
        XCTAssertEqual(after.map(\.range.upperBound), [9 * bs - 1, 11 * bs - 1, 16 * bs - 1])
        XCTAssertEqual(after.map(\.lane), [.bulk, .urgent, .bulk])
        XCTAssertTrue(fake.promotions.isEmpty)
        complete(f, after[1], data)
        XCTAssertEqual(r.wait(for: 1).count, 1, "the read is answered by its own small fetch")
        // Everything else still completes the bulk request, each block fetched once.
        for sub in [fake.all[0], fake.all[2], after[0], after[2]] { complete(f, sub, data) }
        XCTAssertEqual(r.wait(for: 2).count, 2)
        let fetched = fake.all.filter { !fake.withdrawn.contains($0.id) }.map { ($0.range.upperBound - $0.range.lowerBound + 1) }
        XCTAssertEqual(fetched.reduce(0, +), o.size, "no block fetched twice")
        f.stop()
        XCTAssertEqual(try c.index.object(id: o.id)?.cachedBytes, o.size)
    }

    func testAMountReadIsAnsweredWhenItsBlocksLandBeforeTheyAreRecorded() throws {
        let (c, objs, fake, f) = try setup(sizes: [4 * bs])
        defer { f.stop() }
        let o = objs[0]
        let data = content(o.size)
        let r = Results()
        // Read-ahead asked for blocks 1...3; then a read wants block 2, landing-early.
        f.fill(o, bucket: "b", blocks: [1, 2, 3], lane: .readAhead) { _, _ in }
        f.fill(o, bucket: "b", blocks: [2], lane: .urgent, whenLanded: true) { r.add($0, $1) }
        XCTAssertEqual(fake.all.count, 1, "the urgent read joins the read-ahead fetch")
        XCTAssertEqual(fake.promotions.map(\.1), [.urgent])
        complete(f, fake.all[0], data)
        // Answered on landing: the bytes are readable even if not recorded yet.
        XCTAssertEqual(r.wait(for: 1).count, 1)
        XCTAssertEqual(try c.read(o, offset: 2 * bs + 5, count: 10), Array(data[Int(2 * bs + 5)..<Int(2 * bs + 15)]))
        // And a later read of a landed block does not fetch it again.
        f.fill(o, bucket: "b", blocks: [3], lane: .urgent, whenLanded: true) { r.add($0, $1) }
        XCTAssertEqual(r.wait(for: 2).count, 2)
        XCTAssertEqual(fake.all.count, 1)
        f.stop()
        XCTAssertEqual(try c.index.presentBlocks(objectID: o.id).keys.sorted(), [1, 2, 3], "and then recorded")
    }

    func testAReadWaitingInsideALongFetchIsAnsweredWhenItsBlockLands() throws {
        let (c, objs, fake, f) = try setup(sizes: [8 * bs])
        defer { f.stop() }
        let o = objs[0]
        let data = content(o.size)
        let r = Results()
        f.fill(o, bucket: "b", lane: .bulk) { _, _ in }  // one 8-block fetch
        f.fill(o, bucket: "b", blocks: [1], lane: .urgent, whenLanded: true) { r.add($0, $1) }
        XCTAssertEqual(fake.all.count, 1)
        // The worker has written blocks 0 and 1 of 8: the read of block 1 is answered now.
        let fd = open(fake.all[0].path, O_WRONLY | O_CREAT, 0o644)
        _ = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, Int(2 * bs), 0) }
        close(fd)
        f.blocksLanded(tag: fake.all[0].tag, first: 0, crcs: [CRC32C.checksum(Array(data[0..<Int(bs)])),
                                                              CRC32C.checksum(Array(data[Int(bs)..<Int(2 * bs)]))])
        XCTAssertEqual(r.wait(for: 1).count, 1)
        XCTAssertEqual(try c.read(o, offset: bs, count: 100), Array(data[Int(bs)..<Int(bs + 100)]))
        XCTAssertNil(try c.read(o, offset: 3 * bs, count: 100), "block 3 has not landed")
    }

    func testAWholeObjectIsCheckedAgainstItsETagAndAMismatchIsFetchedAgainBeforeTheAnswer() throws {
        let data = content(5000)
        let md5 = Insecure_MD5_hex(data)
        let (c, objs, fake, f) = try setup(sizes: [5000], etag: md5)
        defer { f.stop() }
        let r = Results()
        f.fill(objs[0], bucket: "b", lane: .bulk) { r.add($0, $1) }
        XCTAssertEqual(fake.all.count, 1)
        var bad = data
        bad[123] ^= 1
        complete(f, fake.all[0], bad)
        // Mismatch: dropped and fetched once more, and the request not answered yet.
        let deadline = Date().addingTimeInterval(5)
        while fake.all.count < 2 && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(fake.all.count, 2)
        XCTAssertEqual(r.done.count, 0, "a prewarm hears of the object once its check passed")
        XCTAssertEqual(try c.index.object(id: objs[0].id)?.cachedBytes, 0)
        complete(f, fake.all[1], data)
        XCTAssertNil(r.wait(for: 1).first?.1)
        XCTAssertEqual(try c.index.object(id: objs[0].id)?.verified, .md5Match)
        XCTAssertEqual(try c.index.object(id: objs[0].id)?.cachedBytes, 5000)
    }

    /// Objects are hashed from their files, several side by side: each is checked against its
    /// own ETag, and the one whose file holds other bytes is fetched again before its answer.
    func testObjectsAreHashedFromTheirFilesAndAMismatchIsFetchedAgain() throws {
        let sizes: [Int64] = [2 * bs + 5, 3 * bs, bs + 1, 5 * bs - 3, 2 * bs, bs + 64]
        let datas = sizes.enumerated().map { i, n in (0..<Int(n)).map { UInt8(truncatingIfNeeded: $0 &* (i + 3) &+ i) } }
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let objs = try c.index.recordListing(bucketID: b, objects: sizes.indices.map {
            ObjectInfo(key: "k\($0)", size: sizes[$0], etag: Insecure_MD5_hex(datas[$0])) }, stamp: 1).objects
        let fake = FakeEngine()
        // One block per order: every object comes in several orders.
        let f = CacheFiller(cache: c, submitter: fake, logger: Logger(label: "test"), maxRunBlocks: 1)
        defer { f.stop() }
        let r = Results()
        for o in objs { f.fill(o, bucket: "b", lane: .bulk) { r.add($0, $1) } }
        XCTAssertEqual(fake.all.count, sizes.map { Int(($0 + bs - 1) / bs) }.reduce(0, +))
        let bad = 3
        let first = fake.all
        for s in first {
            let i = objs.firstIndex { c.dataPath($0) == s.path }!
            var d = datas[i]
            if i == bad { d[Int(bs) + 17] ^= 0x40 }  // arrived with other bytes than the ETag says
            complete(f, s, d)
        }
        XCTAssertEqual(r.wait(for: objs.count - 1).count, objs.count - 1)
        // The mismatch is dropped and fetched again, block by block; its request waits.
        let refetch = Int((sizes[bad] + bs - 1) / bs)
        let deadline = Date().addingTimeInterval(5)
        while fake.all.count < first.count + refetch && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(fake.all.count, first.count + refetch)
        XCTAssertEqual(r.done.count, objs.count - 1)
        XCTAssertFalse(r.done.contains { $0.0 == objs[bad].id })
        for s in fake.all[first.count...] {
            XCTAssertEqual(s.path, c.dataPath(try XCTUnwrap(try c.index.object(id: objs[bad].id))))
            complete(f, s, datas[bad])
        }
        let all = r.wait(for: objs.count)
        XCTAssertEqual(all.count, objs.count)
        XCTAssertTrue(all.allSatisfy { $0.1 == nil })
        for (i, o) in objs.enumerated() {
            XCTAssertEqual(try c.index.object(id: o.id)?.verified, .md5Match, "object \(i)")
            XCTAssertEqual(try c.index.object(id: o.id)?.cachedBytes, sizes[i], "object \(i)")
        }
    }

    /// Whole objects are hashed while the commit that records them syncs, each once, and the
    /// check after the commit uses that hash.
    func testWholeObjectsAreHashedOnceWhileTheirCommitSyncs() throws {
        let sizes: [Int64] = [5000, bs, 2 * bs + 9, 1, 3 * bs - 1, 777, bs + 1, 64, 4096, 2 * bs]
        let datas = sizes.enumerated().map { i, n in (0..<Int(n)).map { UInt8(truncatingIfNeeded: $0 &* (i + 5) &+ 3) } }
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "e", name: "b")
        let objs = try c.index.recordListing(bucketID: b, objects: sizes.indices.map {
            ObjectInfo(key: "k\($0)", size: sizes[$0], etag: Insecure_MD5_hex(datas[$0])) }, stamp: 1).objects
        let fake = FakeEngine()
        // Each commit is held until the objects queued for hashing so far are hashed.
        let f = CacheFiller(cache: c, submitter: fake, logger: Logger(label: "test"))
        defer { f.stop() }
        let atCommits = Locked<[(queued: Int, hashed: Int)]>([])
        f.beforeCommit = { [unowned f] queued in
            let deadline = Date().addingTimeInterval(5)
            while f.filesHashed < queued && Date() < deadline { usleep(2000) }
            atCommits.value.append((queued, f.filesHashed))
        }
        let r = Results()
        for o in objs { f.fill(o, bucket: "b", lane: .bulk) { r.add($0, $1) } }
        XCTAssertEqual(fake.all.count, sizes.count, "one order per object")
        for s in fake.all {
            let i = objs.firstIndex { c.dataPath($0) == s.path }!
            complete(f, s, datas[i])
        }
        let all = r.wait(for: objs.count)
        XCTAssertEqual(all.count, objs.count)
        XCTAssertTrue(all.allSatisfy { $0.1 == nil })
        XCTAssertEqual(atCommits.value.last?.queued, sizes.count, "every object was queued before its commit")
        XCTAssertTrue(atCommits.value.allSatisfy { $0.hashed == $0.queued }, "and hashed while it was held: \(atCommits.value)")
        XCTAssertEqual(f.filesHashed, sizes.count, "and not again after it")
        for (i, o) in objs.enumerated() {
            XCTAssertEqual(try c.index.object(id: o.id)?.verified, .md5Match, "object \(i)")
        }
    }

    /// The side-by-side hash equals the one-file hash; a short or missing file gives nil.
    func testMD5OfSeveralFilesAtOnce() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var files: [(path: String, size: Int64)] = []
        for (i, n) in [0, 1, 300_000, 1 << 20, 70_001, 64].enumerated() {
            let path = dir + "/f\(i)"
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
            files.append((path, Int64(n)))
        }
        files.append((dir + "/missing", 10))
        files.append((files[2].path, files[2].size + 1))  // shorter than asked
        let sums = FileMD5.of(files: files)
        for i in 0..<6 { XCTAssertEqual(sums[i], FileMD5.of(path: files[i].path, size: files[i].size), "file \(i)") }
        XCTAssertEqual(sums[0], "d41d8cd98f00b204e9800998ecf8427e")
        XCTAssertNil(sums[6])
        XCTAssertNil(sums[7])
    }

    func testChangedObjectFailsTheFillAndDropsItsBlocks() throws {
        let (c, objs, fake, f) = try setup(sizes: [3 * bs])
        defer { f.stop() }
        let o = objs[0]
        let data = content(o.size)
        // One block already cached from before.
        let fd = open(c.dataPath(o), O_WRONLY | O_CREAT, 0o644)
        _ = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, Int(bs), 0) }
        close(fd)
        try c.commit([.init(objectID: o.id, gen: o.gen, index: 0, crc: CRC32C.checksum(Array(data[0..<Int(bs)])), bytes: bs)])
        let r = Results()
        let genWhenAnswered = Locked<Int64?>(nil)
        f.fill(o, bucket: "b", lane: .bulk) { obj, err in
            genWhenAnswered.value = try? c.index.object(id: obj.id)?.gen
            r.add(obj, err)
        }
        XCTAssertEqual(fake.all.map(\.range.lowerBound), [bs], "present blocks are not fetched")
        complete(f, fake.all[0], data, error: S3Error(kind: .http, operation: "GetObject",
                                                      bucket: "b", key: "k0", status: 412, message: "changed"))
        let res = r.wait(for: 1)
        guard case .changed = try XCTUnwrap(res.first?.1) else { return XCTFail("\(res)") }
        XCTAssertEqual(genWhenAnswered.value, o.gen + 1, "dropped before the waiter hears of it (a reopen sees the new generation)")
        let now = try XCTUnwrap(c.index.object(id: o.id))
        XCTAssertEqual(now.cachedBytes, 0, "the old version's blocks are dropped")
        XCTAssertEqual(now.gen, o.gen + 1)
        // The old version is not fetched again (its file name may be held open by readers).
        f.fill(o, bucket: "b", lane: .urgent) { r.add($0, $1) }
        let again = r.wait(for: 2)
        guard case .evicted = try XCTUnwrap(again.last?.1) else { return XCTFail("\(again)") }
        XCTAssertEqual(fake.all.count, 1, "nothing submitted for a dropped generation")
    }

    func testShardsCoverEveryKeyExactlyOnce() throws {
        let keys = (0..<3000).map { "data/part-\($0).bin" }
        let shards = (0..<3).map { Shard(index: $0, count: 3) }
        var seen = [Int](repeating: 0, count: keys.count)
        for s in shards { for (i, k) in keys.enumerated() where s.contains(key: k) { seen[i] += 1 } }
        XCTAssertTrue(seen.allSatisfy { $0 == 1 })
        for s in shards {
            let n = keys.filter { s.contains(key: $0) }.count
            XCTAssertGreaterThan(n, 800, "shards are balanced")
        }
        XCTAssertEqual(try Shard(parsing: "2/8"), Shard(index: 2, count: 8))
        for bad in ["8/8", "-1/3", "1", "a/b", "1/0", ""] {
            XCTAssertThrowsError(try Shard(parsing: bad), bad) { XCTAssertTrue("\($0)".contains("--shard"), "\($0)") }
        }
    }
}

import Crypto
private func Insecure_MD5_hex(_ data: [UInt8]) -> String {
    Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined()
}
