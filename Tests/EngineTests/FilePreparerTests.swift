import Foundation
import Logging
import S3
import SoakCore
import XCTest
@testable import Engine

/// The worker's file preparer: targets are prepared in the order asked for, a taker that found
/// one not ready is woken once one is; a discarded or untaken target is closed whenever it is
/// ready; and the worker loop starts bulk orders with files prepared ahead of them (created and
/// preallocated before their turn).
final class FilePreparerTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "soak-file-preparer-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func order(_ id: Int, length: Int64 = 1, lane: Lane = .bulk) -> FetchOrder {
        FetchOrder(id: id, bucket: "b", key: "k\(id)", etag: nil, start: 0, end: length - 1,
                   path: dir + "/f\(id)", fileOffset: 0, lane: lane)
    }

    /// `fd` is open on `path` (a closed descriptor's number may be reused for another file).
    private func isOpen(_ fd: Int32, on path: String) -> Bool {
        var a = stat(), b = stat()
        return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev
    }

    /// Records what it opened, in order, and the wakeups; `hold` makes the preparation of that
    /// order wait for `release`.
    private final class Recorder: @unchecked Sendable {
        let lock = NSCondition()
        var opened: [(id: Int, fd: Int32)] = []
        var announced = 0
        var hold: Int?
        var holding = false
        var release = false

        func prepare(_ o: FetchOrder) -> FilePreparer.Target {
            lock.lock()
            if o.id == hold {
                holding = true
                lock.broadcast()
                while !release { lock.wait() }
            }
            lock.unlock()
            let fd = open(o.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            lock.lock(); opened.append((o.id, fd)); lock.broadcast(); lock.unlock()
            return FilePreparer.Target(fd: fd, direct: false)
        }

        func announce() { lock.lock(); announced += 1; lock.broadcast(); lock.unlock() }

        func waitFor(_ cond: () -> Bool) -> Bool {
            lock.lock(); defer { lock.unlock() }
            let until = Date(timeIntervalSinceNow: 5)
            while !cond() { if !lock.wait(until: until) { return cond() } }
            return true
        }
    }

    func testTargetsArePreparedInOrderAndAWaitingTakerIsWoken() throws {
        let r = Recorder()
        r.hold = 3
        let p = FilePreparer(prepare: { r.prepare($0) }, onReady: { r.announce() })
        for id in [3, 1, 2] { p.request(order(id)) }
        XCTAssertTrue(r.waitFor { r.holding })
        XCTAssertNil(p.take(3, wake: true), "not ready yet: the taker wants a wakeup")
        r.lock.lock(); r.release = true; r.lock.broadcast(); r.lock.unlock()
        XCTAssertTrue(r.waitFor { r.opened.count == 3 })
        XCTAssertTrue(r.waitFor { r.announced == 1 })
        usleep(20_000)
        XCTAssertEqual(r.announced, 1, "one wakeup for the one wait, not one per file")
        XCTAssertEqual(r.opened.map(\.id), [3, 1, 2])
        for (id, fd) in r.opened {
            XCTAssertEqual(p.take(id), FilePreparer.Target(fd: fd, direct: false))
            XCTAssertNil(p.take(id), "a target is taken once")
            close(fd)
        }
        XCTAssertEqual(p.outstanding, 0)
        p.stop()
    }

    func testDiscardedAndUntakenTargetsAreClosed() throws {
        let r = Recorder()
        r.hold = 2
        let p = FilePreparer(prepare: { r.prepare($0) }, onReady: { r.announce() })
        for id in 1...4 { p.request(order(id)) }
        XCTAssertTrue(r.waitFor { r.holding }, "order 2 is being prepared")
        p.discard(2)  // while it is being prepared
        p.discard(3)  // queued
        r.lock.lock(); r.release = true; r.lock.broadcast(); r.lock.unlock()
        XCTAssertTrue(r.waitFor { r.opened.count == 3 })
        usleep(20_000)
        XCTAssertEqual(r.opened.map(\.id), [1, 2, 4], "a discarded queued order is never opened")
        XCTAssertFalse(isOpen(r.opened[1].fd, on: dir + "/f2"), "discarded while being prepared: closed once ready")
        XCTAssertNil(p.take(2))
        XCTAssertTrue(isOpen(r.opened[0].fd, on: dir + "/f1"))
        p.discard(1)  // ready: closed at once
        XCTAssertFalse(isOpen(r.opened[0].fd, on: dir + "/f1"))
        let fd4 = r.opened[2].fd
        XCTAssertTrue(isOpen(fd4, on: dir + "/f4"))
        p.stop()
        XCTAssertFalse(isOpen(fd4, on: dir + "/f4"), "stop closes what was never taken")
    }

    /// The loop hands its next bulk orders (up to `slots`) to the preparer, starts those whose
    /// files are ready, and prepares the ones after them before their turn.
    func testWorkerStartsBulkOrdersWithFilesPreparedAhead() throws {
        try XCTSkipUnless(WorkerLoop.prepareFilesAhead, "SOAK_PREPARE_FILES=0")
        let builder = S3RequestBuilder(endpoint: try S3Endpoint(url: "http://127.0.0.1:9", region: "us-east-1"),
                                       credentials: Credentials(accessKeyId: "k", secretAccessKey: "s"))
        let w = try WorkerLoop(config: WorkerConfig(builder: builder, transport: TransportOptions(), slots: 2, logLevel: "error"),
                               logger: Logger(label: "t"))
        let length = Int64(4 * WorkerLoop.bufferedStagingSize)  // preallocated: longer than a staging buffer
        for id in 1...5 { w.handle(.fetch(order(id, length: length))) }
        w.startWaiting()
        XCTAssertNotNil(w.preparer, "bulk orders' files are prepared on the preparer's thread")
        XCTAssertTrue(w.requested.isSubset(of: [1, 2]), "only the next `slots` bulk orders are asked for (those not yet taken)")
        let deadline = Date(timeIntervalSinceNow: 5)
        while w.active.count < 2 && Date() < deadline { usleep(2000); w.startWaiting() }
        XCTAssertEqual(Set(w.active.keys), [1, 2], "started with their prepared files")
        w.startWaiting()  // the loop's next turn
        XCTAssertEqual(w.requested, [3, 4], "and the two after them are being prepared")
        while w.preparer!.outstanding < 2 || !FileManager.default.fileExists(atPath: dir + "/f4") {
            XCTAssertLessThan(Date(), deadline); usleep(2000)
        }
        usleep(50_000)
        var st = stat()
        XCTAssertEqual(stat(dir + "/f3", &st), 0, "created before its turn")
        XCTAssertGreaterThanOrEqual(Int64(st.st_blocks) * 512, length, "and preallocated")
    }
}
