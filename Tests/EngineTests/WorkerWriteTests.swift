import CSys
import Foundation
import S3
import SoakCore
import XCTest
@testable import Engine

/// How a worker writes a body: libcurl's 16 KiB pieces are gathered in a staging buffer and
/// written a full buffer at a time; only bytes in the file count as durable, and a block is
/// announced once it is wholly in the file.
final class WorkerWriteTests: XCTestCase {
    private var path = ""
    private var fd: Int32 = -1

    override func setUpWithError() throws {
        path = NSTemporaryDirectory() + "soak-worker-write-\(UUID().uuidString)"
        fd = open(path, O_RDWR | O_CREAT, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
    }

    override func tearDown() {
        close(fd)
        unlink(path)
    }

    private func fileSize() -> Int64 {
        var st = stat()
        XCTAssertEqual(fstat(fd, &st), 0)
        return Int64(st.st_size)
    }

    func testBodyIsWrittenInWholeStagingBuffersAndBlocksAnnouncedWhenInTheFile() throws {
        let bs: Int64 = 1 << 20
        let length = bs + bs / 2 + 100  // one whole block, then a short one
        let order = FetchOrder(id: 1, bucket: "b", key: "k", etag: nil, start: 0, end: length - 1, path: path,
                               fileOffset: 4096, blockSize: bs)
        let stage = WorkerLoop.bufferedStagingSize
        let a = WorkerLoop.Active(order: order, transfer: try CurlTransfer(), fd: fd, startedAt: 0,
                                  staging: .allocate(byteCount: stage, alignment: WorkerLoop.directAlignment))
        defer { a.staging.deallocate() }
        var rng = SeededRandom(seed: 3)
        let body = (0..<Int(length)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var fed = 0
        func feed(upTo n: Int) throws {
            while fed < n {
                let m = min(16 << 10, n - fed)
                try body[fed..<(fed + m)].withUnsafeBytes { try WorkerLoop.write(a, $0) }
                fed += m
            }
        }
        try feed(upTo: stage - (16 << 10))
        XCTAssertEqual(a.flushed, 0, "nothing is written before the buffer is full")
        XCTAssertEqual(fileSize(), 0)
        try feed(upTo: stage)
        XCTAssertEqual(a.flushed, Int64(stage))
        XCTAssertEqual(fileSize(), 4096 + Int64(stage), "written at the order's file offset")
        try feed(upTo: Int(bs) - 1)
        XCTAssertEqual(WorkerLoop.writtenBlocks(a), 0, "a block is not announced before all of it is in the file")
        try feed(upTo: Int(bs))
        XCTAssertEqual(WorkerLoop.writtenBlocks(a), 1)
        try feed(upTo: Int(length))
        XCTAssertLessThan(a.flushed, length, "the tail waits in the buffer")
        XCTAssertEqual(WorkerLoop.durableCRCs(a).count, 1, "the short last block only counts once it is in the file")
        try WorkerLoop.flushStaging(a)
        XCTAssertEqual(a.flushed, length)
        XCTAssertEqual(WorkerLoop.durableCRCs(a),
                       [CRC32C.checksum(Array(body[0..<Int(bs)])), CRC32C.checksum(Array(body[Int(bs)...]))])
        var back = [UInt8](repeating: 0, count: Int(length))
        XCTAssertEqual(back.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 4096) }, Int(length))
        XCTAssertEqual(back, body)
    }

    /// A finished O_TMPFILE gets its name by descriptor where the process may (root here), and
    /// through /proc/self/fd otherwise; both give the same file.
    func testTmpfileIsLinkedByDescriptorOrThroughProc() throws {
        let dir = NSTemporaryDirectory() + "soak-link-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let saved = FetchTargets.linkByDescriptor
        defer { FetchTargets.linkByDescriptor = saved }
        let dirFD = open(dir, csys_o_path() | O_DIRECTORY)
        XCTAssertGreaterThanOrEqual(dirFD, 0)
        defer { close(dirFD) }
        for byDescriptor in [true, false] {
            FetchTargets.linkByDescriptor = byDescriptor
            let t = csys_open_tmpfile(dirFD, 0, 0o644)
            XCTAssertGreaterThanOrEqual(t, 0)
            defer { close(t) }
            let bytes = Array("linked \(byDescriptor)".utf8)
            XCTAssertEqual(pwrite(t, bytes, bytes.count, 0), bytes.count)
            let name = "f-\(byDescriptor)"
            XCTAssertTrue(FetchTargets.link(fd: t, dir: dirFD, name: name), "errno \(errno)")
            XCTAssertEqual(FileManager.default.contents(atPath: dir + "/" + name).map(Array.init), bytes)
            XCTAssertFalse(FetchTargets.link(fd: t, dir: dirFD, name: name), "an existing name is not replaced")
            XCTAssertEqual(errno, EEXIST)
        }
    }
}
