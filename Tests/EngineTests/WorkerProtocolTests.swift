/// The coordinator ↔ worker wire protocol: line framing (`LineBuffer`), JSON messages
/// (`LineCodec`, `ToWorker`, `FromWorker`) and `writeAll` over a real pipe.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import XCTest
@testable import Engine
import S3
import SoakCore

private func feed(_ b: inout LineBuffer, _ bytes: [UInt8]) { bytes.withUnsafeBytes { b.append($0) } }
private func feed(_ b: inout LineBuffer, _ s: String) { feed(&b, Array(s.utf8)) }
private func text(_ line: ArraySlice<UInt8>?) -> String? { line.map { String(decoding: $0, as: UTF8.self) } }

/// A key that exercises JSON escaping: non-ASCII, emoji, quotes, backslash, and a newline
/// (legal in S3 keys) that must not break the one-message-per-line framing.
private let awkwardKey = "données/日本語/😀 \"quoted\" back\\slash\nnew line\ttab ü.bin"

private func sampleOrder(id: Int = 42) -> FetchOrder {
    FetchOrder(id: id, bucket: "my-bucket", key: awkwardKey, etag: "9e107d9d372bb6826bd81d3542a419d6-3",
               start: 8_388_608, end: 16_777_215, path: "/dest/.soak-partial/abc.part", fileOffset: 8_388_608)
}

final class LineBufferTests: XCTestCase {
    func testEmpty() {
        var b = LineBuffer()
        XCTAssertNil(b.nextLine())
        XCTAssertEqual(b.pending, 0)
    }

    func testLineSplitAcrossChunks() {
        var b = LineBuffer()
        feed(&b, "hel")
        XCTAssertNil(b.nextLine())
        XCTAssertEqual(b.pending, 3)
        feed(&b, "lo wo")
        XCTAssertNil(b.nextLine())
        feed(&b, "rld\n")
        XCTAssertEqual(text(b.nextLine()), "hello world")
        XCTAssertNil(b.nextLine())
        XCTAssertEqual(b.pending, 0)
    }

    func testSeveralLinesInOneChunk() {
        var b = LineBuffer()
        feed(&b, "one\ntwo\nthree\n")
        XCTAssertEqual(text(b.nextLine()), "one")
        XCTAssertEqual(text(b.nextLine()), "two")
        XCTAssertEqual(text(b.nextLine()), "three")
        XCTAssertNil(b.nextLine())
        XCTAssertEqual(b.pending, 0)
    }

    func testPartialTrailingLineIsKept() {
        var b = LineBuffer()
        feed(&b, "first\nsecond\nthi")
        XCTAssertEqual(text(b.nextLine()), "first")
        XCTAssertEqual(text(b.nextLine()), "second")
        XCTAssertNil(b.nextLine())
        XCTAssertEqual(b.pending, 3)
        // Asking again does not consume the partial line.
        XCTAssertNil(b.nextLine())
        XCTAssertEqual(b.pending, 3)
        feed(&b, "rd\nfou")
        XCTAssertEqual(text(b.nextLine()), "third")
        XCTAssertNil(b.nextLine())
        XCTAssertEqual(b.pending, 3)
    }

    func testEmptyLines() {
        var b = LineBuffer()
        feed(&b, "\n\nx\n")
        XCTAssertEqual(b.nextLine()?.count, 0)
        XCTAssertEqual(b.nextLine()?.count, 0)
        XCTAssertEqual(text(b.nextLine()), "x")
        XCTAssertNil(b.nextLine())
    }

    func testChunkBoundaryInsideAMultiByteCharacter() {
        let bytes = Array("ü日😀\n".utf8)
        var b = LineBuffer()
        for byte in bytes {
            XCTAssertNil(b.nextLine())
            feed(&b, [byte])
        }
        XCTAssertEqual(text(b.nextLine()), "ü日😀")
    }

    func testEveryChunkingOfAMessageStreamYieldsTheSameLines() throws {
        var stream: [UInt8] = []
        let msgs: [FromWorker] = [.ready(pid: 1234), .progress([1: 10, 2: 20]), .done(FetchReport(id: 1, bytes: 5, error: nil, firstByteLatency: 0.25))]
        for m in msgs { stream += try LineCodec.encode(m) }
        for chunk in [1, 2, 3, 7, 16, 64, stream.count] {
            var b = LineBuffer()
            var got: [FromWorker] = []
            var i = 0
            while i < stream.count {
                feed(&b, Array(stream[i..<min(i + chunk, stream.count)]))
                i += chunk
                while let line = b.nextLine() { got.append(try LineCodec.decode(FromWorker.self, line)) }
            }
            XCTAssertEqual(got, msgs, "chunk size \(chunk)")
            XCTAssertEqual(b.pending, 0)
        }
    }
}

final class LineCodecTests: XCTestCase {
    private func roundTrip<T: Codable>(_ v: T) throws -> T {
        let bytes = try LineCodec.encode(v)
        // Exactly one newline, at the end: one message per line whatever the content.
        XCTAssertEqual(bytes.last, 0x0A)
        XCTAssertEqual(bytes.filter { $0 == 0x0A }.count, 1)
        var b = LineBuffer()
        feed(&b, bytes)
        let line = try XCTUnwrap(b.nextLine())
        XCTAssertEqual(b.pending, 0)
        return try LineCodec.decode(T.self, line)
    }

    func testFetchOrderWithUnicodeKey() throws {
        let o = sampleOrder()
        let back = try roundTrip(ToWorker.fetch(o))
        guard case .fetch(let got) = back else { return XCTFail("got \(back)") }
        XCTAssertEqual(got, o)
        XCTAssertEqual(got.key, awkwardKey)
        XCTAssertEqual(got.length, 8_388_608)
        XCTAssertEqual(back, .fetch(o))
        XCTAssertNotEqual(back, .fetch(sampleOrder(id: 43)))
    }

    /// The compact wire form (what workers actually exchange), not the generic JSON path.
    func testWireFormFetchWithTabsNewlinesPercentAndPublish() throws {
        var o = FetchOrder(id: 7, bucket: "b", key: "a\tb\nc%25d%\r/ü 日本", etag: "abc-3", start: 5, end: 99,
                           path: "/tmp/x\ty", fileOffset: 5)
        o.publish = PublishSpec(finalPath: "a\tb\nc%25d%", etag: "e%\t", mtime: 1_700_000_000.25)
        o.root = "/d/e\tst%"
        let bytes = try LineCodec.encode(ToWorker.fetch(o))
        XCTAssertEqual(bytes.first, UInt8(ascii: "F"))
        XCTAssertEqual(bytes.filter { $0 == 0x0A }.count, 1)
        let back = try LineCodec.decode(ToWorker.self, ArraySlice(bytes.dropLast()))
        guard case .fetch(let got) = back else { return XCTFail("got \(back)") }
        XCTAssertEqual(got, o)
        var plain = o
        plain.publish = nil; plain.etag = nil; plain.root = nil
        let b2 = try LineCodec.encode(ToWorker.fetch(plain))
        XCTAssertEqual(try LineCodec.decode(ToWorker.self, ArraySlice(b2.dropLast())), .fetch(plain))
        guard case .fetch(let g2) = try LineCodec.decode(ToWorker.self, ArraySlice(b2.dropLast())) else { return XCTFail() }
        XCTAssertNil(g2.etag); XCTAssertNil(g2.publish); XCTAssertNil(g2.root)
        XCTAssertFalse(g2.direct)
        var direct = plain
        direct.direct = true
        let b3 = try LineCodec.encode(ToWorker.fetch(direct))
        XCTAssertEqual(try LineCodec.decode(ToWorker.self, ArraySlice(b3.dropLast())), .fetch(direct))
        // A retried order's stall count (each doubles its stall bounds) crosses the pipe.
        for var retried in [direct, o] {
            retried.stalls = 3
            let b4 = try LineCodec.encode(ToWorker.fetch(retried))
            guard case .fetch(let g4) = try LineCodec.decode(ToWorker.self, ArraySlice(b4.dropLast())) else { return XCTFail() }
            XCTAssertEqual(g4.stalls, 3)
            XCTAssertEqual(g4, retried)
        }
        XCTAssertThrowsError(try LineCodec.decode(ToWorker.self, ArraySlice(b3.dropLast() + Array("\t-1".utf8))))
    }

    /// Orders read together with the configuration wait in the line buffer, where no poll
    /// would see them: the loop must not wait before handling them.
    func testOrdersAlreadyBufferedAreHandledWithoutWaiting() throws {
        var r = LineBuffer()
        let cfg = Array("J{}\n".utf8) + (try LineCodec.encode(ToWorker.fetch(sampleOrder())))
        cfg.withUnsafeBytes { r.append($0) }
        XCTAssertNotNil(r.nextLine(), "the configuration line")
        XCTAssertTrue(r.hasLine)
        XCTAssertEqual(WorkerLoop.pollTimeout(linesWaiting: r.hasLine, anyPaused: false), 0)
        _ = r.nextLine()
        Array("F\t1".utf8).withUnsafeBytes { r.append($0) }  // half a line: wait for the rest
        XCTAssertFalse(r.hasLine)
        XCTAssertEqual(WorkerLoop.pollTimeout(linesWaiting: r.hasLine, anyPaused: false), 100)
        XCTAssertEqual(WorkerLoop.pollTimeout(linesWaiting: r.hasLine, anyPaused: true), 5)
    }

    func testWireFormDoneAndProgress() throws {
        let err = S3Error(kind: .shortBody(expected: 10, got: 3), operation: "GetObject", bucket: "b", key: "k\tx\n",
                          status: 206, message: "short\nbody")
        for r in [FetchReport(id: 1, bytes: 10, error: nil, firstByteLatency: 0.0025),
                  FetchReport(id: 2, bytes: 3, error: err, firstByteLatency: nil)] {
            let bytes = try LineCodec.encode(FromWorker.done(r))
            XCTAssertEqual(bytes.first, UInt8(ascii: "D"))
            XCTAssertEqual(bytes.filter { $0 == 0x0A }.count, 1)
            XCTAssertEqual(try LineCodec.decode(FromWorker.self, ArraySlice(bytes.dropLast())), .done(r))
        }
        let p = FromWorker.progress([1: 5, 99: 1 << 40])
        let pb = try LineCodec.encode(p)
        XCTAssertEqual(try LineCodec.decode(FromWorker.self, ArraySlice(pb.dropLast())), p)
        XCTAssertThrowsError(try LineCodec.decode(FromWorker.self, ArraySlice(Array("D\tx\t1".utf8))))
        XCTAssertThrowsError(try LineCodec.decode(ToWorker.self, ArraySlice(Array("F\t1\t2".utf8))))
    }

    func testWireFormBlockOrdersAndTheirReports() throws {
        func wire(_ m: ToWorker) throws -> ToWorker {
            let bytes: [UInt8] = try LineCodec.encode(m)
            XCTAssertEqual(bytes.first, UInt8(ascii: "F"), "fetch orders use the compact form")
            return try LineCodec.decode(ToWorker.self, ArraySlice(bytes.dropLast()))
        }
        for publish in [nil, PublishSpec(finalPath: "/d/f", etag: "e", mtime: 5)] {
            var o = sampleOrder()
            o.publish = publish
            o.blockSize = 1 << 20
            o.lane = .urgent
            XCTAssertEqual(try wire(.fetch(o)), .fetch(o))
            o.blockSize = nil; o.lane = .readAhead
            XCTAssertEqual(try wire(.fetch(o)), .fetch(o))
        }
        let r = FetchReport(id: 3, bytes: 3 << 20, error: nil, firstByteLatency: 0.01, crcs: [0, 0xFFFF_FFFF, 0xE306_9283])
        let b = try LineCodec.encode(FromWorker.done(r))
        XCTAssertEqual(try LineCodec.decode(FromWorker.self, ArraySlice(b.dropLast())), .done(r))
        XCTAssertEqual(try roundTrip(ToWorker.promote(id: 9, lane: .urgent)), .promote(id: 9, lane: .urgent))
        let l = FromWorker.landed(id: 4, first: 2, crcs: [1, 0xDEAD_BEEF])
        let lb = try LineCodec.encode(l)
        XCTAssertEqual(lb.first, UInt8(ascii: "L"))
        XCTAssertEqual(try LineCodec.decode(FromWorker.self, ArraySlice(lb.dropLast())), l)
        XCTAssertThrowsError(try LineCodec.decode(FromWorker.self, ArraySlice(Array("D\t1\t2\t-\t-\tzz\t-".utf8))),
                             "a CRC that is not hex is a protocol error")
    }

    func testFetchOrderWithoutETag() throws {
        var o = sampleOrder()
        o.etag = nil
        o.start = 0; o.end = 0; o.fileOffset = 0
        XCTAssertEqual(try roundTrip(ToWorker.fetch(o)), .fetch(o))
        XCTAssertEqual(o.length, 1)
    }

    func testRatePromoteShutdown() throws {
        for m: ToWorker in [.promote(id: 7, lane: .urgent), .promote(id: Int.max, lane: .readAhead),
                            .rate(bytesPerSecond: 12_500_000), .rate(bytesPerSecond: nil), .shutdown] {
            XCTAssertEqual(try roundTrip(m), m)
        }
        // The cases are distinguishable after decoding.
        XCTAssertNotEqual(try roundTrip(ToWorker.rate(bytesPerSecond: nil)), .rate(bytesPerSecond: 1))
        XCTAssertNotEqual(try roundTrip(ToWorker.promote(id: 7, lane: .urgent)), .promote(id: 8, lane: .urgent))
        XCTAssertNotEqual(try roundTrip(ToWorker.shutdown), .promote(id: 0, lane: .urgent))
    }

    func testConfigure() throws {
        let endpoint = try S3Endpoint(url: "http://127.0.0.1:8333", region: "eu-west-3", addressing: .path)
        let creds = Credentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalr/K7MDENG+bPxRfiCY", sessionToken: "tok=")
        var transport = TransportOptions()
        transport.verifyTLS = false
        transport.caBundle = "/etc/ssl/ca.pem"
        transport.lowSpeedTime = 7
        let cfg = WorkerConfig(builder: S3RequestBuilder(endpoint: endpoint, credentials: creds), transport: transport,
                               slots: 12, logLevel: "debug")
        let back = try roundTrip(ToWorker.configure(cfg))
        // ToWorker's == treats every configure as equal, so compare the payload itself.
        guard case .configure(let got) = back else { return XCTFail("got \(back)") }
        XCTAssertEqual(got.builder.endpoint, endpoint)
        XCTAssertEqual(got.builder.credentials, creds)
        XCTAssertEqual(got.transport, transport)
        XCTAssertEqual(got.slots, 12)
        XCTAssertEqual(got.logLevel, "debug")
    }

    /// Refreshed credentials for a live worker: the whole key triple survives the wire, and two
    /// different ones stay different.
    func testCredentials() throws {
        let a = Credentials(accessKeyId: "AKIDNEW", secretAccessKey: "n3w/Secret+Key=", sessionToken: "tok\twith\ttabs")
        let b = Credentials(accessKeyId: "AKIDNEW", secretAccessKey: "other")
        XCTAssertEqual(try roundTrip(ToWorker.credentials(a)), .credentials(a))
        XCTAssertEqual(try roundTrip(ToWorker.credentials(b)), .credentials(b))
        XCTAssertNotEqual(try roundTrip(ToWorker.credentials(a)), .credentials(b))
        XCTAssertNotEqual(try roundTrip(ToWorker.credentials(a)), .shutdown)
        // One line: a token or key can never split the message.
        XCTAssertEqual(try LineCodec.encode(ToWorker.credentials(a)).filter { $0 == 0x0A }.count, 1)
    }

    func testAttemptsSurviveTheWire() throws {
        var e = S3Error(kind: .transport(curlCode: 7), operation: "GetObject", bucket: "b", key: "k", message: "refused")
        e.attempts = 5
        guard case .done(let got) = try roundTrip(FromWorker.done(FetchReport(id: 1, bytes: 0, error: e, firstByteLatency: nil)))
        else { return XCTFail("not a done report") }
        XCTAssertEqual(got.error?.attempts, 5)
    }

    func testReadyAndProgress() throws {
        for m: FromWorker in [.ready(pid: 31337), .progress([:]), .progress([1: 0, 2: 5_000_000_000, 99: 17])] {
            XCTAssertEqual(try roundTrip(m), m)
        }
        XCTAssertNotEqual(try roundTrip(FromWorker.progress([1: 2])), .progress([1: 3]))
    }

    func testDoneWithoutError() throws {
        let r = FetchReport(id: 5, bytes: 8_388_608, error: nil, firstByteLatency: 0.0421)
        let back = try roundTrip(FromWorker.done(r))
        XCTAssertEqual(back, .done(r))
        guard case .done(let got) = back else { return XCTFail("got \(back)") }
        XCTAssertNil(got.error)
        XCTAssertEqual(got.firstByteLatency, 0.0421)
    }

    func testDoneWithS3Error() throws {
        let errors = [
            S3Error(kind: .http, operation: "GetObject", bucket: "b", key: awkwardKey, status: 503, code: "SlowDown",
                    message: "Please reduce your request rate.", retryAfter: 2),
            S3Error(kind: .shortBody(expected: 100, got: 60), operation: "GetObject", bucket: "b", key: "k",
                    status: 206, message: "short"),
            S3Error(kind: .transport(curlCode: 56), operation: "GetObject", bucket: "b", key: "k", message: "reset"),
            S3Error(kind: .localIO(errno: 28), operation: "GetObject", bucket: "b", key: "k", message: "ENOSPC"),
        ]
        for e in errors {
            let r = FetchReport(id: 9, bytes: 60, error: e, firstByteLatency: nil)
            let back = try roundTrip(FromWorker.done(r))
            XCTAssertEqual(back, .done(r))
            guard case .done(let got) = back else { return XCTFail("got \(back)") }
            XCTAssertEqual(got.error, e)
            XCTAssertEqual(got.error?.isRetryable, e.isRetryable)
            XCTAssertNil(got.firstByteLatency)
        }
    }

    func testGarbageDoesNotDecode() {
        for bad in ["", "{", "not json", "{\"unknownCase\":{}}", "[1,2,3]"] {
            XCTAssertThrowsError(try LineCodec.decode(FromWorker.self, ArraySlice(Array(bad.utf8))), bad)
            XCTAssertThrowsError(try LineCodec.decode(ToWorker.self, ArraySlice(Array(bad.utf8))), bad)
        }
    }

    func testWrongDirectionDoesNotDecode() throws {
        // A report fed to the order decoder is rejected rather than misread.
        let bytes = try LineCodec.encode(FromWorker.ready(pid: 1))
        XCTAssertThrowsError(try LineCodec.decode(ToWorker.self, ArraySlice(bytes.dropLast())))
    }
}

/// Records an error thrown on another thread.
private final class ErrorBox: @unchecked Sendable {
    // @unchecked: written once by the writer thread before the semaphore is signalled.
    var error: Error?
}

final class WriteAllTests: XCTestCase {
    private func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw LocalIOError(errno: errno, operation: "pipe", path: "-") }
        return (fds[0], fds[1])
    }

    private func readToEnd(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { p in Syscall.retrying { read(fd, p.baseAddress, p.count) } }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    func testMessagesWrittenToAPipeReadBack() throws {
        let (r, w) = try makePipe()
        defer { close(r) }
        let msgs: [ToWorker] = [.fetch(sampleOrder(id: 1)), .rate(bytesPerSecond: 5), .promote(id: 1, lane: .urgent), .shutdown]
        for m in msgs { try Syscall.writeAll(w, try LineCodec.encode(m), path: "pipe") }
        close(w)
        let bytes = readToEnd(r)
        var b = LineBuffer()
        feed(&b, bytes)
        var got: [ToWorker] = []
        while let line = b.nextLine() { got.append(try LineCodec.decode(ToWorker.self, line)) }
        XCTAssertEqual(got, msgs)
        XCTAssertEqual(b.pending, 0)
    }

    func testLargerThanThePipeBufferArrivesWhole() throws {
        // 1 MiB is far beyond a pipe's buffer (64 KiB on Linux), so the write blocks and comes
        // back short; every byte must still arrive, in order.
        let (r, w) = try makePipe()
        defer { close(r) }
        var rng = SeededRandom(seed: 5)
        let payload = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let box = ErrorBox()
        let done = DispatchSemaphore(value: 0)
        let writer = Thread {
            do { try Syscall.writeAll(w, payload, path: "pipe") } catch { box.error = error }
            close(w)
            done.signal()
        }
        writer.start()
        let got = readToEnd(r)
        done.wait()
        XCTAssertNil(box.error)
        XCTAssertEqual(got.count, payload.count)
        XCTAssertTrue(got == payload)
    }

    func testEmptyWriteIsANoOp() throws {
        let (r, w) = try makePipe()
        defer { close(r) }
        try Syscall.writeAll(w, [], path: "pipe")
        close(w)
        XCTAssertEqual(readToEnd(r), [])
    }

    func testBadDescriptorThrowsLocalIOError() {
        XCTAssertThrowsError(try Syscall.writeAll(-1, [1, 2, 3], path: "pipe")) { e in
            guard let io = e as? LocalIOError else { return XCTFail("got \(e)") }
            XCTAssertEqual(io.errno, EBADF)
            XCTAssertEqual(io.operation, "write")
        }
    }
}
