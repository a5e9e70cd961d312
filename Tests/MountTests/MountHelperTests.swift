import Mount
import SoakCore
import XCTest

/// mount(8) and fstab calls translated into `soak mount` arguments.
final class MountHelperTests: XCTestCase {
    func testFstabOptionsBecomeFlags() throws {
        let (args, env) = try MountHelper.translate([
            "s3://b/p", "/mnt/x", "-o",
            "rw,nodev,nosuid,_netdev,cache_dir=/var/cache/soak,cache_size=50%,endpoint_url=http://h:1,allow_other,uid=5,profile=ml",
        ])
        XCTAssertEqual(args, ["mount", "s3://b/p", "/mnt/x", "--cache-dir", "/var/cache/soak", "--cache-size", "50%",
                              "--endpoint-url", "http://h:1", "--allow-other", "--uid", "5", "--profile", "ml"])
        XCTAssertEqual(env, [:])
    }

    func testMountFlagsAndAttachedOptions() throws {
        let (args, _) = try MountHelper.translate(["-n", "s3://b/p", "/m", "-ocache_dir=/c,prefetch", "-s"])
        XCTAssertEqual(args, ["mount", "s3://b/p", "/m", "--cache-dir", "/c", "--prefetch"])
    }

    func testAWSContractOptions() throws {
        let (args, _) = try MountHelper.translate(["s3://b/p", "/m", "-o", "no_sign_request,ca_bundle=/etc/ca.pem,request_payer"])
        XCTAssertEqual(args, ["mount", "s3://b/p", "/m", "--no-sign-request", "--ca-bundle", "/etc/ca.pem",
                              "--request-payer", "requester"])
        let (explicit, _) = try MountHelper.translate(["s3://b/p", "/m", "-o", "request_payer=requester"])
        XCTAssertEqual(explicit, ["mount", "s3://b/p", "/m", "--request-payer", "requester"])
    }

    func testBadCallsAreUsageErrors() {
        for bad in [["s3://b/p"], ["s3://b/p", "/m", "-o"], ["s3://b/p", "/m", "-o", "nonsense=1"], ["s3://b/p", "/m", "--weird"]] {
            XCTAssertThrowsError(try MountHelper.translate(bad), "\(bad)")
        }
    }
}
