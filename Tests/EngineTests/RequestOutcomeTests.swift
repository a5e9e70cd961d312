import Engine
import S3
import XCTest

final class RequestOutcomeTests: XCTestCase {
    func testLabels() {
        func e(_ kind: S3Error.Kind, _ status: Int = 0) -> S3Error {
            S3Error(kind: kind, operation: "GetObject", bucket: "b", key: "k", status: status, message: "m")
        }
        XCTAssertEqual(RequestOutcome.label(nil), "ok")
        XCTAssertEqual(RequestOutcome.label(e(.http, 503)), "503")
        XCTAssertEqual(RequestOutcome.label(e(.http, 412)), "412")
        XCTAssertEqual(RequestOutcome.label(e(.http)), "http")
        XCTAssertEqual(RequestOutcome.label(e(.transport(curlCode: 7))), "transport_error")
        XCTAssertEqual(RequestOutcome.label(e(.stalled)), "stalled")
        XCTAssertEqual(RequestOutcome.label(e(.shortBody(expected: 2, got: 1))), "short_body")
        XCTAssertEqual(RequestOutcome.label(e(.invalidResponse)), "invalid_response")
        XCTAssertEqual(RequestOutcome.label(e(.localIO(errno: 5))), "local_error")
    }
}
