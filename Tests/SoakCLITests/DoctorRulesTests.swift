import Cache
import Foundation
import S3
import SoakCore
import XCTest
@testable import soak

/// `soak doctor`'s verdicts, from what was read or measured to the line printed.
final class DoctorRulesTests: XCTestCase {
    func testHTTPDateAndSkew() throws {
        let d = try XCTUnwrap(DoctorRules.parseHTTPDate("Sun, 06 Nov 1994 08:49:37 GMT"))
        XCTAssertEqual(d.timeIntervalSince1970, 784_111_777)
        XCTAssertNil(DoctorRules.parseHTTPDate("yesterday"))
        let sent = Date(timeIntervalSince1970: 784_111_700), got = Date(timeIntervalSince1970: 784_111_702)
        XCTAssertEqual(DoctorRules.clockSkew(serverDate: "Sun, 06 Nov 1994 08:49:37 GMT", sentAt: sent, receivedAt: got), 76)
        XCTAssertNil(DoctorRules.clockSkew(serverDate: nil, sentAt: sent, receivedAt: got))
        XCTAssertEqual(DoctorRules.skew(2).0, .ok)
        XCTAssertEqual(DoctorRules.skew(-120).0, .warn)
        XCTAssertEqual(DoctorRules.skew(900).0, .fail)
        XCTAssertEqual(DoctorRules.skew(-3600).0, .fail)
        XCTAssertEqual(DoctorRules.skew(nil).0, .ok)
        XCTAssertEqual(DoctorRules.skew(-120).1.prefix(18), "clock skew -120 s:")
        XCTAssertEqual(DoctorRules.skew(-0.3).1, "clock skew 0 s")
        XCTAssertEqual(DoctorRules.skew(1.6).1, "clock skew +2 s")
    }

    func testFuseConf() {
        XCTAssertTrue(DoctorRules.fuseConfAllowsOther("# comment\nuser_allow_other\n"))
        XCTAssertTrue(DoctorRules.fuseConfAllowsOther("mount_max = 1000\n  user_allow_other  # for soak\n"))
        XCTAssertFalse(DoctorRules.fuseConfAllowsOther("#user_allow_other\n"))
        XCTAssertFalse(DoctorRules.fuseConfAllowsOther("user_allow_others\n"))
        XCTAssertFalse(DoctorRules.fuseConfAllowsOther(""))
    }

    func testAppArmor() {
        XCTAssertEqual(DoctorRules.appArmor(enabled: nil, label: nil).detail, "not enabled")
        XCTAssertEqual(DoctorRules.appArmor(enabled: "N\n", label: "docker-default (enforce)").status, .ok)
        XCTAssertEqual(DoctorRules.appArmor(enabled: "Y\n", label: "unconfined\n").status, .ok)
        XCTAssertEqual(DoctorRules.appArmor(enabled: "Y", label: "snap.soak (complain)\0").status, .ok)
        let confined = DoctorRules.appArmor(enabled: "Y\n", label: "docker-default (enforce)\n")
        XCTAssertEqual(confined.status, .warn)
        XCTAssertTrue(confined.detail.contains("docker-default (enforce)"), confined.detail)
    }

    func testSpace() {
        let gib: Int64 = 1 << 30
        // 100 GiB file system: 5 GiB are kept free.
        XCTAssertEqual(DoctorRules.space(free: 50 * gib, total: 100 * gib, capacity: .unlimited, existing: false).status, .ok)
        XCTAssertEqual(DoctorRules.space(free: 50 * gib, total: 100 * gib, capacity: .bytes(20 * gib), existing: false).status, .ok)
        let over = DoctorRules.space(free: 15 * gib, total: 100 * gib, capacity: .bytes(20 * gib), existing: false)
        XCTAssertEqual(over.status, .warn)
        XCTAssertTrue(over.detail.contains("10.0 GiB available"), over.detail)
        XCTAssertEqual(DoctorRules.space(free: 50 * gib, total: 100 * gib, capacity: .percent(60), existing: false).status, .warn)
        XCTAssertEqual(DoctorRules.space(free: 5 * gib, total: 100 * gib, capacity: .unlimited, existing: false).status, .fail)
        XCTAssertEqual(DoctorRules.space(free: 5 * gib, total: 100 * gib, capacity: .unlimited, existing: true).status, .warn)
        XCTAssertEqual(DoctorRules.human(1536 * 1024), "1.5 MiB")
        XCTAssertEqual(DoctorRules.human(12), "12 B")
    }

    func testLineAndReport() throws {
        XCTAssertEqual(DoctorCheck.fail("list", "why").line, "FAIL  list           why")
        XCTAssertEqual(DoctorCheck.ok("credentials", "x").line, "ok    credentials    x")
        var report = DoctorReport(source: "s3://b/p/", checks: [.ok("a", "1"), .warn("b", "2")])
        XCTAssertEqual(report.exitStatus, ExitStatus.success)
        report.checks.append(.fail("c", "3"))
        XCTAssertEqual(report.exitStatus, ExitStatus.failure)
        let j = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any])
        XCTAssertEqual(j["exit_status"] as? Int, 1)
        XCTAssertEqual(j["ok"] as? Bool, false)
        XCTAssertEqual((j["checks"] as? [[String: String]])?.last, ["status": "fail", "name": "c", "detail": "3"])
    }

    func testListFailures() throws {
        let uri = try S3URI(parsing: "s3://b/p/")
        let missing = S3Error(kind: .http, operation: "ListObjectsV2", bucket: "b", status: 404, code: "NoSuchBucket", message: "x")
        XCTAssertTrue(DoctorS3.listFailure(missing, uri: uri, endpoint: "http://e").detail.contains("does not exist"))
        let denied = S3Error(kind: .http, operation: "ListObjectsV2", bucket: "b", status: 403, code: "AccessDenied", message: "no")
        let d = DoctorS3.listFailure(denied, uri: uri, endpoint: "http://e")
        XCTAssertEqual(d.status, .fail)
        XCTAssertTrue(d.detail.hasPrefix("access denied: no s3:ListBucket permission on s3://b/p/"), d.detail)
        let body = Data("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>".utf8)
        XCTAssertEqual(DoctorS3.listed(body, uri: uri).status, .warn)
        XCTAssertEqual(DoctorS3.listed(Data("garbage".utf8), uri: uri).status, .fail)
    }

    /// The feature probes leave nothing behind, whatever the file system answers.
    func testProbesLeaveNothing() throws {
        let dir = NSTemporaryDirectory() + "soak-doctor-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = DoctorLocal.probeFeatures(in: dir)
        XCTAssertNil(f.writeFailure)
        XCTAssertNotEqual(f.tmpfile.status, .fail)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
        XCTAssertEqual(DoctorLocal.nearestExisting(dir + "/a/b/c"), dir)
        XCTAssertEqual(DoctorLocal.nearestExisting("/no-such-dir-soak/x"), "/")
        let missing = DoctorLocal.cache(directory: dir + "/cache", capacity: .unlimited)
        XCTAssertEqual(missing.first?.status, .ok)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/cache"))
    }
}
