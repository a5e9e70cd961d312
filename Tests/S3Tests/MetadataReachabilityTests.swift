import Foundation
import XCTest
@testable import S3

/// Off EC2, the region probe's silent IMDS is not waited for a second time by the chain.
final class MetadataReachabilityTests: XCTestCase {
    func testATimedOutTokenRequestIsNotRepeatedByTheChain() throws {
        // Answers only after the 1 s deadline: the client sees a timeout.
        let silent = try StubHTTPServer { _ in usleep(1_500_000); return .text(200, "late") }
        let context = CredentialContext(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": silent.url],
                                        home: NSTemporaryDirectory())
        let imds = InstanceMetadataCredentialProvider(context: context)
        XCTAssertNil(imds.region())
        XCTAssertEqual(silent.requests.count, 1)
        XCTAssertNil(try imds.load())
        XCTAssertEqual(silent.requests.count, 1, "the chain's IMDS step did not ask again")
        XCTAssertTrue(InstanceMetadataReachability.recentlySilent(silent.url))
        XCTAssertFalse(InstanceMetadataReachability.recentlySilent(silent.url,
                                                                  now: Date() + InstanceMetadataReachability.window + 1))

        // An endpoint that answers is asked every time (and an answer clears a silence).
        let answering = try StubHTTPServer { r in
            r.method == "PUT" ? .text(200, "tok") : .text(404, "")
        }
        let live = InstanceMetadataCredentialProvider(
            context: CredentialContext(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": answering.url],
                                       home: NSTemporaryDirectory()))
        XCTAssertNil(live.region())
        XCTAssertNil(try live.load())
        XCTAssertEqual(answering.requests.filter { $0.method == "PUT" }.count, 2)
        InstanceMetadataReachability.record(answering.url, timedOut: true)
        InstanceMetadataReachability.record(answering.url, timedOut: false)
        XCTAssertFalse(InstanceMetadataReachability.recentlySilent(answering.url))
    }
}
