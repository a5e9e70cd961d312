import Cache
import Engine
import Foundation
import S3
import SoakCore
import XCTest
@testable import Mount

/// Every typed error gets its errno in `FSError`, the one place.
final class FSErrorTests: XCTestCase {
    private func s3(_ status: Int) -> S3Error {
        S3Error(kind: .http, operation: "GetObject", bucket: "b", key: "k", status: status, message: "m")
    }

    func testFillErrors() {
        XCTAssertEqual(FSError(FillError.changed(key: "k")).errno, ESTALE)
        XCTAssertEqual(FSError(FillError.replaced(key: "k", now: ObjectInfo(key: "k", size: 1, etag: "n"))).errno, ESTALE)
        XCTAssertEqual(FSError(FillError.deleted(key: "k")).errno, ENOENT)
        XCTAssertEqual(FSError(FillError.fetch(s3(403))).errno, EACCES)
        XCTAssertEqual(FSError(FillError.fetch(s3(404))).errno, ENOENT)
        XCTAssertEqual(FSError(FillError.fetch(s3(500))).errno, EIO)
        XCTAssertEqual(FSError(FillError.evicted(key: "k")).errno, EIO)
        XCTAssertEqual(FSError(FillError.local("disk")).errno, EIO)
    }

    func testOtherTypedErrors() {
        XCTAssertEqual(FSError(s3(403)).errno, EACCES)
        XCTAssertEqual(FSError(s3(412)).errno, ESTALE)
        XCTAssertEqual(FSError(LocalIOError(errno: ENOSPC, operation: "pread", path: "/x")).errno, EIO)
        XCTAssertEqual(FSError(FSError.badHandle(3)).errno, EBADF, "an FSError stays what it is")
        XCTAssertEqual(FSError.listing(s3(403)).errno, EACCES)
        XCTAssertEqual(FSError.listing(s3(404)).errno, EIO, "a missing bucket is not a missing file")
    }

    func testNamespaceConditions() {
        XCTAssertEqual(FSError.notFound("x").errno, ENOENT)
        XCTAssertEqual(FSError.notADirectory("x").errno, ENOTDIR)
        XCTAssertEqual(FSError.isADirectory("x").errno, EISDIR)
        XCTAssertEqual(FSError.readOnly("x").errno, EROFS)
        XCTAssertEqual(FSError.stale("x").errno, ESTALE)
    }

    func testCacheAndUnknownErrorsAreIOWithTheirMessage() {
        struct Odd: Error, CustomStringConvertible { var description: String { "odd thing" } }
        let unknown = FSError(Odd())
        XCTAssertEqual(unknown.kind, .io)
        XCTAssertEqual(unknown.errno, EIO)
        XCTAssertEqual(unknown.description, "odd thing")
        XCTAssertEqual(FSError(.badHandle, "m").description, "m")
        XCTAssertEqual(FSError(CacheError.invalidSize("1 parsec")).errno, EIO)
        XCTAssertEqual(FSError(S3Error(kind: .transport(curlCode: 56), operation: "GetObject", bucket: "b", key: "k", status: 0,
                                       message: "reset")).kind, .io, "a transport failure is I/O")
        XCTAssertEqual(FSError.badHandle(7).message, "no open handle 7")
        XCTAssertEqual(FSError.listing(FSError.notFound("d")).kind, .io)
    }
}
