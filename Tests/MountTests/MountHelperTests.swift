@testable import Mount
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

    func testEveryOptionMapsToItsFlag() throws {
        for (option, flag) in MountHelper.valued {
            let (args, _) = try MountHelper.translate(["s3://b/p", "/m", "-o", "\(option)=v=1"])
            XCTAssertEqual(args, ["mount", "s3://b/p", "/m", flag, "v=1"], option)
        }
        for (option, flag) in MountHelper.flags {
            let (args, _) = try MountHelper.translate(["s3://b/p", "/m", "-o", option])
            XCTAssertEqual(args, ["mount", "s3://b/p", "/m", flag], option)
        }
        let (ignored, _) = try MountHelper.translate(["s3://b/p", "/m", "-o", MountHelper.ignored.sorted().joined(separator: ",")])
        XCTAssertEqual(ignored, ["mount", "s3://b/p", "/m"], "mount(8)'s generic options mean nothing to soak")
    }

    func testOptionsFromSeveralGroupsAndEmptyOnes() throws {
        let (args, _) = try MountHelper.translate(["-f", "-o", "ro,,region=eu", "s3://b/p", "-v", "/m", "-oprefetch,", "-r", "-w"])
        XCTAssertEqual(args, ["mount", "s3://b/p", "/m", "--region", "eu", "--prefetch"])
    }

    func testBadOptionsSayWhatIsWrong() {
        func message(_ args: [String]) -> String {
            do { _ = try MountHelper.translate(args); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(message(["s3://b/p", "/m", "extra"]), "usage: mount.fuse.soak s3://BUCKET/PREFIX DIR [-o options]")
        XCTAssertEqual(message([]), "usage: mount.fuse.soak s3://BUCKET/PREFIX DIR [-o options]")
        XCTAssertEqual(message(["s3://b/p", "/m", "-o"]), "mount.fuse.soak: -o needs options")
        XCTAssertEqual(message(["s3://b/p", "/m", "-x"]), "mount.fuse.soak: unknown flag -x")
        // A flag given a value and a valued option given none are not guessed at.
        for bad in ["allow_other=1", "cache_dir", "nonsense"] {
            let m = message(["s3://b/p", "/m", "-o", bad])
            XCTAssertTrue(m.hasPrefix("mount.fuse.soak: unknown option '\(bad)' (cache_dir=, "), m)
            XCTAssertFalse(m.contains("\n"), "one line")
        }
    }
}
