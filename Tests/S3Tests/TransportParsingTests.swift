/// Response-header parsing (`ResponseHead`, `ETag`), error classification (`S3Error`) and
/// the range checks every GET goes through (`ResponseCheck.checkRange`).
import Foundation
import XCTest
@testable import S3

private func head(_ lines: [String]) -> ResponseHead {
    var h = ResponseHead()
    for l in lines { h.consume(headerLine: l) }
    return h
}

private func http(_ status: Int, _ code: String? = nil, retryAfter: Double? = nil) -> S3Error {
    S3Error(kind: .http, operation: "GetObject", bucket: "bkt", key: "k", status: status, code: code,
            message: "m", retryAfter: retryAfter)
}

private func failure(_ kind: S3Error.Kind) -> S3Error {
    S3Error(kind: kind, operation: "GetObject", bucket: "bkt", key: "k", message: "m")
}

final class ContentRangeTests: XCTestCase {
    private func parse(_ s: String) -> [Int64?]? {
        ResponseHead.parseContentRange(s).map { [$0.start, $0.end, $0.total] }
    }

    func testValid() {
        XCTAssertEqual(parse("bytes 0-99/1000"), [0, 99, 1000])
        XCTAssertEqual(parse("bytes 5-5/6"), [5, 5, 6])
        XCTAssertEqual(parse("  bytes 100-199/200 "), [100, 199, 200])
        XCTAssertEqual(parse("bytes 0-0/1"), [0, 0, 1])
        // Larger than 32 bits.
        XCTAssertEqual(parse("bytes 5000000000-5000000099/9000000000"), [5_000_000_000, 5_000_000_099, 9_000_000_000])
    }

    func testUnknownTotal() {
        XCTAssertEqual(parse("bytes 0-99/*"), [0, 99, nil])
        XCTAssertEqual(parse("bytes 7-7/*"), [7, 7, nil])
    }

    func testMalformed() {
        for s in ["", "bytes", "bytes ", "bytes 0-99", "bytes=0-99/100", "items 0-99/100", "0-99/100",
                  "bytes a-b/100", "bytes 0-x/100", "bytes -5/100", "bytes 0-/100", "bytes */100",
                  "bytes 0-99/abc", "bytes 0-99/", "bytes 0 - 99/100", "bytes -1-5/10"] {
            XCTAssertNil(ResponseHead.parseContentRange(s), "'\(s)' should not parse")
        }
    }

    func testEndBeforeStart() {
        XCTAssertNil(ResponseHead.parseContentRange("bytes 10-5/100"))
        XCTAssertNil(ResponseHead.parseContentRange("bytes 1-0/100"))
    }

    func testTotalMustExceedEnd() {
        XCTAssertNil(ResponseHead.parseContentRange("bytes 0-99/99"))
        XCTAssertNil(ResponseHead.parseContentRange("bytes 0-99/50"))
        XCTAssertNil(ResponseHead.parseContentRange("bytes 0-0/0"))
        XCTAssertNil(ResponseHead.parseContentRange("bytes 0-99/-1"))
        XCTAssertEqual(parse("bytes 0-99/100"), [0, 99, 100])
    }
}

final class ResponseHeadTests: XCTestCase {
    func testStatusLine() {
        XCTAssertEqual(head(["HTTP/1.1 200 OK\r\n"]).status, 200)
        XCTAssertEqual(head(["HTTP/1.1 206 Partial Content\r\n"]).status, 206)
        XCTAssertEqual(head(["HTTP/2 503\r\n"]).status, 503)
        XCTAssertEqual(head(["HTTP/1.1 404 Not Found"]).status, 404)
        XCTAssertEqual(head(["HTTP/1.1 abc"]).status, 0)
    }

    func testNewStatusLineStartsAFreshHead() {
        // Headers of an interim or redirect response must not leak into the final one.
        let h = head([
            "HTTP/1.1 503 Slow Down\r\n",
            "ETag: \"old\"\r\n",
            "Content-Length: 77\r\n",
            "Content-Range: bytes 0-9/10\r\n",
            "Retry-After: 5\r\n",
            "\r\n",
            "HTTP/1.1 206 Partial Content\r\n",
            "Content-Length: 4\r\n",
            "\r\n",
        ])
        XCTAssertEqual(h.status, 206)
        XCTAssertNil(h.etag)
        XCTAssertNil(h.contentRange)
        XCTAssertNil(h.retryAfter)
        XCTAssertEqual(h.contentLength, 4)

        var expected = ResponseHead()
        expected.status = 206
        expected.contentLength = 4
        XCTAssertEqual(h, expected)
    }

    func testFullResponseHead() {
        let h = head([
            "HTTP/1.1 206 Partial Content\r\n",
            "x-amz-request-id: 4442587FB7D0A2F9\r\n",
            "Last-Modified: Wed, 12 Oct 2009 17:50:00 GMT\r\n",
            "ETag: \"9e107d9d372bb6826bd81d3542a419d6\"\r\n",
            "Content-Range: bytes 100-199/5000\r\n",
            "Content-Length: 100\r\n",
            "Content-Type: application/octet-stream\r\n",
            "\r\n",
        ])
        XCTAssertEqual(h.status, 206)
        XCTAssertEqual(h.etag, "9e107d9d372bb6826bd81d3542a419d6")
        XCTAssertEqual(h.contentLength, 100)
        XCTAssertEqual(h.contentRange?.start, 100)
        XCTAssertEqual(h.contentRange?.end, 199)
        XCTAssertEqual(h.contentRange?.total, 5000)
        XCTAssertNil(h.retryAfter)
    }

    func testHeaderNamesAreCaseInsensitive() {
        let h = head(["HTTP/1.1 200 OK", "etag: \"abc\"", "CONTENT-LENGTH: 12", "content-range: bytes 0-11/12",
                      "retry-after: 3"])
        XCTAssertEqual(h.etag, "abc")
        XCTAssertEqual(h.contentLength, 12)
        XCTAssertEqual(h.contentRange?.end, 11)
        XCTAssertEqual(h.retryAfter, 3)
    }

    func testETagForms() {
        let forms = [
            "ETag: \"d41d8cd98f00b204e9800998ecf8427e\"",
            "ETag: d41d8cd98f00b204e9800998ecf8427e",
            "ETag: W/\"d41d8cd98f00b204e9800998ecf8427e\"",
            "ETag: &#34;d41d8cd98f00b204e9800998ecf8427e&#34;",
            "ETag: &quot;d41d8cd98f00b204e9800998ecf8427e&quot;",
            "ETag:   \"d41d8cd98f00b204e9800998ecf8427e\"  \r\n",
        ]
        for f in forms {
            XCTAssertEqual(head(["HTTP/1.1 200 OK", f]).etag, "d41d8cd98f00b204e9800998ecf8427e", f)
        }
        XCTAssertEqual(head(["HTTP/1.1 200 OK", "ETag: \"abc-12\""]).etag, "abc-12")
    }

    func testRetryAfter() {
        XCTAssertEqual(head(["HTTP/1.1 503 Slow Down", "Retry-After: 2"]).retryAfter, 2)
        XCTAssertEqual(head(["HTTP/1.1 503 Slow Down", "Retry-After: 120\r\n"]).retryAfter, 120)
        XCTAssertEqual(head(["HTTP/1.1 503 Slow Down", "Retry-After: 1.5"]).retryAfter, 1.5)
        XCTAssertEqual(head(["HTTP/1.1 503 Slow Down", "Retry-After: 0"]).retryAfter, 0)
        // The HTTP-date form and nonsense are not honoured.
        XCTAssertNil(head(["HTTP/1.1 503 Slow Down", "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT"]).retryAfter)
        XCTAssertNil(head(["HTTP/1.1 503 Slow Down", "Retry-After: -5"]).retryAfter)
        XCTAssertNil(head(["HTTP/1.1 503 Slow Down", "Retry-After: soon"]).retryAfter)
    }

    /// `Date` is kept as sent (soak doctor reads the clock skew from it); `x-amz-date` is not it.
    func testDate() {
        XCTAssertEqual(head(["HTTP/1.1 200 OK", "date:  Sun, 06 Nov 1994 08:49:37 GMT\r\n"]).date,
                       "Sun, 06 Nov 1994 08:49:37 GMT")
        XCTAssertNil(head(["HTTP/1.1 200 OK", "x-amz-date: 20261208T000000Z"]).date)
    }

    func testBadValuesAreDropped() {
        let h = head(["HTTP/1.1 200 OK", "Content-Length: lots", "Content-Range: bytes 9-0/10"])
        XCTAssertNil(h.contentLength)
        XCTAssertNil(h.contentRange)
    }

    func testLinesWithoutColonAndUnknownHeadersChangeNothing() {
        let base = head(["HTTP/1.1 200 OK", "ETag: \"e\"", "Content-Length: 5"])
        var h = base
        for l in ["\r\n", "", "garbage line", "X-Custom: 1", "Content-Type: text/plain", "Date: Mon, 01 Jan 2024 00:00:00 GMT"] {
            h.consume(headerLine: l)
        }
        XCTAssertEqual(h, base)
    }

    func testEqualityComparesContentRange() {
        let a = head(["HTTP/1.1 206 Partial Content", "Content-Range: bytes 0-9/100"])
        let b = head(["HTTP/1.1 206 Partial Content", "Content-Range: bytes 0-9/200"])
        let c = head(["HTTP/1.1 206 Partial Content", "Content-Range: bytes 0-9/*"])
        XCTAssertNotEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(a, head(["HTTP/1.1 206 Partial Content", "Content-Range: bytes 0-9/100"]))
    }
}

final class ETagTests: XCTestCase {
    func testNormalize() {
        XCTAssertEqual(ETag.normalize("\"abc\""), "abc")
        XCTAssertEqual(ETag.normalize("abc"), "abc")
        XCTAssertEqual(ETag.normalize("W/\"abc\""), "abc")
        XCTAssertEqual(ETag.normalize("  \"abc-3\" "), "abc-3")
        XCTAssertEqual(ETag.normalize("&#34;abc&#34;"), "abc")
        XCTAssertEqual(ETag.normalize("&quot;abc&quot;"), "abc")
        XCTAssertEqual(ETag.normalize("W/abc"), "abc")
    }

    func testDegenerateInputs() {
        XCTAssertEqual(ETag.normalize(""), "")
        XCTAssertEqual(ETag.normalize("\"\""), "")
        XCTAssertEqual(ETag.normalize("\""), "\"", "a lone quote is not a quoted empty string")
        XCTAssertEqual(ETag.normalize("&#34;&#34;"), "")
        XCTAssertEqual(ETag.normalize("&quot;&quot;"), "")
        // Unbalanced quoting is left alone.
        XCTAssertEqual(ETag.normalize("\"abc"), "\"abc")
        XCTAssertEqual(ETag.normalize("abc\""), "abc\"")
        XCTAssertEqual(ETag.normalize("&#34;abc"), "&#34;abc")
    }

    func testNormalizeIsIdempotent() {
        for raw in ["\"abc\"", "W/\"abc\"", "&quot;abc&quot;", "abc-2"] {
            let once = ETag.normalize(raw)
            XCTAssertEqual(ETag.normalize(once), once)
        }
    }
}

final class S3ErrorClassificationTests: XCTestCase {
    func testServerErrorsAreRetryable() {
        for status in [500, 502, 503, 504] {
            XCTAssertTrue(http(status).isRetryable, "\(status)")
            XCTAssertFalse(http(status).isPreconditionFailed)
        }
        XCTAssertTrue(http(500, "InternalError").isRetryable)
        XCTAssertFalse(http(500, "InternalError").isThrottle)
        XCTAssertFalse(http(502).isThrottle)
    }

    func testSlowDownIsARetryableThrottle() {
        let e = http(503, "SlowDown", retryAfter: 2)
        XCTAssertTrue(e.isRetryable)
        XCTAssertTrue(e.isThrottle)
        XCTAssertFalse(e.isPreconditionFailed)
        // A bare 503 is treated as throttling too.
        XCTAssertTrue(http(503).isThrottle)
    }

    func testTooManyRequests() {
        XCTAssertTrue(http(429).isRetryable)
        XCTAssertTrue(http(429).isThrottle)
        // Some S3-compatible servers throttle with a 400 and a code: still a throttle, and
        // (like every throttle) worth retrying after a pause.
        for code in ["Throttling", "TooManyRequests", "SlowDown"] {
            XCTAssertTrue(http(400, code).isThrottle, code)
            XCTAssertTrue(http(400, code).isRetryable, code)
        }
    }

    func testClientErrorsAreFinal() {
        for (status, code) in [(403, "AccessDenied"), (404, "NoSuchKey"), (404, "NoSuchBucket"), (400, "InvalidArgument"),
                               (416, "InvalidRange"), (301, "PermanentRedirect")] {
            let e = http(status, code)
            XCTAssertFalse(e.isRetryable, "\(status) \(code)")
            XCTAssertFalse(e.isThrottle, "\(status) \(code)")
            XCTAssertFalse(e.isPreconditionFailed, "\(status) \(code)")
        }
    }

    func testTimeoutsAreRetryable() {
        XCTAssertTrue(http(408).isRetryable)
        XCTAssertTrue(http(400, "RequestTimeout").isRetryable)
        XCTAssertFalse(http(400, "RequestTimeout").isThrottle)
    }

    func testPreconditionFailed() {
        let e = http(412, "PreconditionFailed")
        XCTAssertTrue(e.isPreconditionFailed)
        XCTAssertFalse(e.isRetryable, "the object changed: retrying cannot help")
        XCTAssertFalse(e.isThrottle)
        // Only an HTTP answer can be a failed precondition.
        var t = failure(.transport(curlCode: 7))
        t.status = 412
        XCTAssertFalse(t.isPreconditionFailed)
    }

    func testTransportFailures() {
        // 6 resolve, 7 refused, 28 timeout, 35 TLS connect, 52 empty reply, 55 send, 56 reset.
        for c: Int32 in [6, 7, 28, 35, 52, 55, 56] {
            let e = failure(.transport(curlCode: c))
            XCTAssertTrue(e.isRetryable, "curl \(c)")
            XCTAssertFalse(e.isThrottle, "curl \(c)")
            XCTAssertFalse(e.isPreconditionFailed, "curl \(c)")
        }
        // 1 unsupported protocol, 3 malformed URL, 4 feature not built in, 43 bad argument, 48 unknown option.
        for c: Int32 in [1, 3, 4, 43, 48] {
            XCTAssertFalse(failure(.transport(curlCode: c)).isRetryable, "curl \(c)")
        }
    }

    func testOtherKinds() {
        XCTAssertTrue(failure(.shortBody(expected: 100, got: 60)).isRetryable)
        XCTAssertTrue(failure(.stalled).isRetryable)
        XCTAssertTrue(failure(.invalidResponse).isRetryable)
        XCTAssertFalse(failure(.localIO(errno: 28)).isRetryable, "a full disk does not heal by retrying")
        for k: S3Error.Kind in [.shortBody(expected: 1, got: 0), .stalled, .invalidResponse, .localIO(errno: 5)] {
            XCTAssertFalse(failure(k).isThrottle)
            XCTAssertFalse(failure(k).isPreconditionFailed)
        }
    }

    func testDescriptionNamesTargetAndCauseOnOneLine() {
        let e = S3Error(kind: .http, operation: "GetObject", bucket: "my-bucket", key: "dir/file.bin", status: 503,
                        code: "SlowDown", message: "Please reduce your request rate.")
        XCTAssertEqual(e.description, "GetObject s3://my-bucket/dir/file.bin failed: HTTP 503 SlowDown: Please reduce your request rate.")
        XCTAssertFalse(e.description.contains("\n"))
        XCTAssertEqual("\(e)", e.description)

        let list = S3Error(kind: .http, operation: "ListObjectsV2", bucket: "b", status: 404, code: "NoSuchBucket",
                           message: "bucket not found")
        XCTAssertEqual(list.description, "ListObjectsV2 s3://b failed: HTTP 404 NoSuchBucket: bucket not found")

        let noCode = S3Error(kind: .http, operation: "HeadObject", bucket: "b", key: "k", status: 403, message: "access denied")
        XCTAssertEqual(noCode.description, "HeadObject s3://b/k failed: HTTP 403 access denied")

        let transport = failure(.transport(curlCode: 7))
        XCTAssertEqual(transport.description, "GetObject s3://bkt/k failed: m")
        XCTAssertFalse(transport.description.contains("HTTP"))
    }

    /// A failure after retries says how many attempts it took; one attempt says nothing extra.
    func testDescriptionNamesTheAttemptsOfAFailureAfterRetries() throws {
        var e = failure(.transport(curlCode: 7))
        e.attempts = 10
        XCTAssertEqual(e.description, "GetObject s3://bkt/k failed after 10 attempts: m")
        e.attempts = 1
        XCTAssertEqual(e.description, "GetObject s3://bkt/k failed: m")
        // A report from a worker that never sets it still decodes.
        let old = #"{"kind":{"http":{}},"operation":"GetObject","bucket":"b","status":500,"message":"x"}"#
        XCTAssertNil(try JSONDecoder().decode(S3Error.self, from: Data(old.utf8)).attempts)
    }

    func testCodableRoundTrip() throws {
        let all: [S3Error] = [
            S3Error(kind: .http, operation: "GetObject", bucket: "b", key: "ключ/ü", status: 503, code: "SlowDown",
                    message: "slow \"down\"", retryAfter: 2.5),
            S3Error(kind: .transport(curlCode: 56), operation: "GetObject", bucket: "b", key: "k", message: "reset"),
            S3Error(kind: .stalled, operation: "GetObject", bucket: "b", key: "k", message: "stalled"),
            S3Error(kind: .shortBody(expected: 5_000_000_000, got: 17), operation: "GetObject", bucket: "b", key: "k",
                    status: 206, message: "short"),
            S3Error(kind: .invalidResponse, operation: "ListObjectsV2", bucket: "b", message: "bad xml"),
            S3Error(kind: .localIO(errno: 28), operation: "GetObject", bucket: "b", key: nil, message: "ENOSPC"),
        ]
        let data = try JSONEncoder().encode(all)
        let back = try JSONDecoder().decode([S3Error].self, from: data)
        XCTAssertEqual(back, all)
        XCTAssertEqual(back[0].retryAfter, 2.5)
        XCTAssertEqual(back[3].kind, .shortBody(expected: 5_000_000_000, got: 17))
        XCTAssertNil(back[5].key)
        // Equality is not vacuous: different kinds compare unequal.
        XCTAssertNotEqual(all[1], S3Error(kind: .transport(curlCode: 7), operation: "GetObject", bucket: "b", key: "k",
                                          message: "reset"))
    }
}

final class ResponseCheckTests: XCTestCase {
    private func response(_ status: Int, range: (Int64, Int64, Int64?)? = nil, length: Int64? = nil) -> ResponseHead {
        var h = ResponseHead()
        h.status = status
        h.contentRange = range.map { (start: $0.0, end: $0.1, total: $0.2) }
        h.contentLength = length
        return h
    }

    private func check(_ h: ResponseHead, _ r: ClosedRange<Int64>?, body: Int64) throws {
        try ResponseCheck.checkRange(h, requested: r, bodyBytes: body, operation: "GetObject", bucket: "b", key: "k")
    }

    private func thrown(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> S3Error? {
        do { try body(); XCTFail("expected an error", file: file, line: line) } catch let e as S3Error { return e } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
        return nil
    }

    func test206WithMatchingContentRange() throws {
        try check(response(206, range: (100, 199, 1000), length: 100), 100...199, body: 100)
        try check(response(206, range: (0, 0, 1)), 0...0, body: 1)
        try check(response(206, range: (0, 99, nil)), 0...99, body: 100)
    }

    func test206ClippedAtTheEndOfTheObject() throws {
        // Asking past the end: the server sends what there is.
        try check(response(206, range: (900, 999, 1000), length: 100), 900...1999, body: 100)
    }

    func test206WithWrongStartIsInvalid() {
        let e = thrown { try check(response(206, range: (0, 99, 1000), length: 100), 100...199, body: 100) }
        XCTAssertEqual(e?.kind, .invalidResponse)
        XCTAssertEqual(e?.status, 206)
        XCTAssertEqual(e?.key, "k")
        XCTAssertEqual(e?.bucket, "b")
        XCTAssertEqual(e?.operation, "GetObject")
    }

    func test206WithoutContentRangeIsInvalid() {
        XCTAssertEqual(thrown { try check(response(206, length: 100), 100...199, body: 100) }?.kind, .invalidResponse)
    }

    func test206ShortBody() {
        let e = thrown { try check(response(206, range: (100, 199, 1000)), 100...199, body: 60) }
        XCTAssertEqual(e?.kind, .shortBody(expected: 100, got: 60))
        XCTAssertEqual(e?.isRetryable, true)
    }

    func test200ForARangeFromZeroIsAcceptedOnlyIfItFitsTheRange() throws {
        // A server may ignore Range and send the whole object when the range starts at 0 and
        // covers all of it; more bytes than asked would land past the range, so that is refused.
        try check(response(200, length: 100), 0...99, body: 100)
        try check(response(200, length: 60), 0...99, body: 60)
        try check(response(200), 0...99, body: 100)
        XCTAssertEqual(thrown { try check(response(200, length: 1000), 0...99, body: 1000) }?.kind, .invalidResponse)
    }

    func test200ForARangeFromLaterIsInvalid() {
        let e = thrown { try check(response(200, length: 1000), 100...199, body: 1000) }
        XCTAssertEqual(e?.kind, .invalidResponse)
        XCTAssertEqual(e?.status, 200)
    }

    func testUnrangedGet() throws {
        try check(response(200, length: 50), nil, body: 50)
        try check(response(200), nil, body: 0)
        XCTAssertEqual(thrown { try check(response(200, length: 50), nil, body: 49) }?.kind,
                       .shortBody(expected: 50, got: 49))
    }
}

/// The check that runs before the first body byte of a ranged GET is written anywhere.
final class RangeProblemTests: XCTestCase {
    private func h(_ status: Int, _ extra: [String]) -> ResponseHead { head(["HTTP/1.1 \(status) X"] + extra) }

    func testExactRangeIsAccepted() {
        XCTAssertNil(ResponseCheck.rangeProblem(h(206, ["Content-Range: bytes 100-199/1000", "Content-Length: 100"]),
                                                requested: 100...199))
        XCTAssertNil(ResponseCheck.rangeProblem(h(206, ["Content-Range: bytes 900-999/1000"]), requested: 900...1099),
                     "cut at the object's end")
        XCTAssertNil(ResponseCheck.rangeProblem(h(200, ["Content-Length: 50"]), requested: 0...99),
                     "Range ignored, whole object from 0, shorter than asked")
        XCTAssertNil(ResponseCheck.rangeProblem(h(412, []), requested: 5...9), "errors are judged elsewhere")
    }

    func testWrongRangesAreRefused() {
        let bad: [(ResponseHead, ClosedRange<Int64>)] = [
            (h(206, ["Content-Range: bytes 101-199/1000"]), 100...199),  // shifted start
            (h(206, ["Content-Range: bytes 101-200/1000"]), 100...199),  // shifted both
            (h(206, ["Content-Range: bytes 100-150/1000"]), 100...199),  // ends short
            (h(206, ["Content-Range: bytes 100-199/150"]), 100...199),   // past the total it states
            (h(206, ["Content-Range: bytes 100-199/1000", "Content-Length: 99"]), 100...199),
            (h(206, []), 0...9),                                          // no Content-Range
            (h(200, ["Content-Length: 1000"]), 100...199),               // Range ignored mid-object
            (h(200, ["Content-Length: 1000"]), 0...99),                  // Range ignored, more than asked
        ]
        for (i, (hd, r)) in bad.enumerated() {
            XCTAssertNotNil(ResponseCheck.rangeProblem(hd, requested: r), "case \(i)")
            XCTAssertThrowsError(try ResponseCheck.checkRange(hd, requested: r, bodyBytes: r.upperBound - r.lowerBound + 1,
                                                              operation: "GetObject", bucket: "b", key: "k"), "case \(i)")
        }
    }
}
