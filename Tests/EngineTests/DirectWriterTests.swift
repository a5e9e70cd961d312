import CSys
import Foundation
import Logging
import S3
import SoakCore
import XCTest
@testable import Engine

/// The worker's background O_DIRECT writer: writes land in order at their offsets, a buffer
/// comes back for every one handed over, a failed write stops its tag's run and no other, and
/// a transfer's bytes count as written only once the writer has written them.
final class DirectWriterTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "soak-direct-writer-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func openDirect(_ name: String) -> Int32 {
        var fd = open(dir + "/" + name, O_RDWR | O_CREAT | csys_o_direct(), 0o600)
        if fd < 0 && errno == EINVAL { fd = open(dir + "/" + name, O_RDWR | O_CREAT, 0o600) }  // tmpfs
        return fd
    }

    /// The file's first `count` bytes, read through the page cache.
    private func readBack(_ path: String, _ count: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        var back = [UInt8](repeating: 0, count: count)
        let n = back.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return n == count ? back : []
    }

    func testWritesLandInOrderAndAFailureStopsOnlyItsOwnTag() throws {
        let size = 64 << 10
        let w = DirectWriter(bufferSize: size, alignment: 4096, maxQueued: 2)
        defer { w.stop() }
        let fd = openDirect("a")
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var buf = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        var expected: [UInt8] = []
        for i in 0..<6 {  // more than maxQueued: submit waits for the disk instead of queueing more
            let fill = UInt8(i + 1)
            buf.initializeMemory(as: UInt8.self, repeating: fill)
            expected += [UInt8](repeating: fill, count: size)
            let next = w.submit(tag: 1, fd: fd, buffer: buf, count: size, offset: Int64(i * size))
            XCTAssertNotEqual(next.baseAddress, buf.baseAddress, "the buffer handed over is the writer's until written")
            buf = next
        }
        // A closed descriptor fails tag 2's first write; its second is dropped, tag 1 goes on.
        buf = w.submit(tag: 2, fd: 9999, buffer: buf, count: size, offset: 0)
        buf = w.submit(tag: 2, fd: 9999, buffer: buf, count: size, offset: Int64(size))
        buf.initializeMemory(as: UInt8.self, repeating: 7)
        expected += [UInt8](repeating: 7, count: size)
        buf = w.submit(tag: 1, fd: fd, buffer: buf, count: size, offset: Int64(6 * size))
        w.waitUntilWritten(tag: 1)
        w.waitUntilWritten(tag: 2)
        buf.deallocate()
        let done = w.completions()
        XCTAssertEqual(done.filter { $0.tag == 1 }.map(\.errno), Array(repeating: 0, count: 7))
        XCTAssertEqual(done.filter { $0.tag == 1 }.map(\.bytes), Array(repeating: size, count: 7))
        XCTAssertEqual(done.filter { $0.tag == 2 }.map(\.errno), [EBADF, ECANCELED])
        XCTAssertEqual(w.completions(), [], "each completion is handed out once")
        XCTAssertTrue(readBack(dir + "/a", expected.count) == expected, "the file holds the writes at their offsets")
    }

    /// Through the worker's write path: full buffers go to the writer, `flushed` moves only when
    /// `collectWrites` sees them written, and the unaligned tail is written at the end.
    func testAWorkerTransferCountsBytesOnlyOnceWritten() throws {
        let path = dir + "/part"
        let length = 3 * WorkerLoop.directStagingSize + 1000
        let fd = openDirect("part")
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let order = FetchOrder(id: 5, bucket: "b", key: "k", etag: nil, start: 0, end: Int64(length) - 1,
                               path: path, fileOffset: 0, direct: true)
        let builder = S3RequestBuilder(endpoint: try S3Endpoint(url: "http://127.0.0.1:9", region: "us-east-1"),
                                       credentials: Credentials(accessKeyId: "k", secretAccessKey: "s"))
        let loop = try WorkerLoop(config: WorkerConfig(builder: builder, transport: TransportOptions(), slots: 4,
                                                       logLevel: "error"),
                                  logger: Logger(label: "test"))
        let a = WorkerLoop.Active(order: order, transfer: try CurlTransfer(), fd: fd, startedAt: 0,
                                  staging: .allocate(byteCount: WorkerLoop.directStagingSize, alignment: 4096))
        a.direct = true
        loop.active[order.id] = a
        var rng = SeededRandom(seed: 11)
        let body = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let writer = loop.directWriter()
        var fed = 0
        while fed < length {
            let m = min(16 << 10, length - fed)
            try body[fed..<(fed + m)].withUnsafeBytes { try WorkerLoop.write(a, $0, writer: writer) }
            fed += m
        }
        XCTAssertEqual(a.flushed + a.queued, Int64(3 * WorkerLoop.directStagingSize))
        XCTAssertEqual(a.staged, 1000, "the tail waits in the buffer")
        loop.active[order.id] = nil
        loop.settleWrites(a)
        XCTAssertEqual(a.flushed, Int64(3 * WorkerLoop.directStagingSize), "written bytes count once collected")
        XCTAssertEqual(a.queued, 0)
        try WorkerLoop.flushStaging(a)
        XCTAssertEqual(a.flushed, Int64(length))
        a.staging.deallocate()
        XCTAssertTrue(readBack(path, length) == body, "the file holds the body")
    }
}
