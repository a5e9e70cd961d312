import Foundation
import SoakCore
import XCTest

/// `soak --version` and the `soak_build_info` metric name the commit the binary was built from,
/// as recorded by scripts/gen-buildinfo (which scripts/test runs before it builds).
final class VersionIntegrationTests: XCTestCase {
    /// The commit scripts/gen-buildinfo recorded for this build, or nil when it wrote nothing.
    static func recordedCommit() throws -> String? {
        let path = Harness.repoRoot + "/Sources/SoakCore/BuildInfo+Generated.swift"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let quoted = try XCTUnwrap(text.split(separator: "\"").dropFirst().first, text)
        return String(quoted)
    }

    /// The commit of the work tree now (what gen-buildinfo records), when git can say.
    static func headCommit() throws -> String? {
        let r = try Harness.run("/usr/bin/env", ["git", "-C", Harness.repoRoot, "rev-parse", "--short=12", "HEAD"])
        return r.status == 0 ? r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }

    func testVersionPrintsVersionAndCommit() throws {
        _ = try Harness.requireServer()  // scripts/test generated the commit file before building
        let r = try Harness.soak(["--version"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let recorded = try Self.recordedCommit()
        XCTAssertEqual(r.stdout, "\(BuildInfo.version) (commit \(recorded ?? "unknown"))\n")
        // Under scripts/test the file is written right before the build: it names HEAD.
        if let head = try Self.headCommit() {
            let commit = try XCTUnwrap(recorded, "scripts/gen-buildinfo wrote no commit file")
            XCTAssertTrue(commit == head || commit == head + "-dirty", "recorded \(commit), HEAD is \(head)")
        }
    }

    /// The job metrics file (and a mount's /metrics, same code) carries the commit as a label.
    func testBuildInfoMetricCarriesTheCommit() throws {
        let endpoint = try Harness.requireServer()
        let commit = try XCTUnwrap(try Self.recordedCommit(), "scripts/gen-buildinfo wrote no commit file")
        let bucket = Harness.uniqueBucket("version")
        let work = try Harness.tempDir("version")
        defer { try? FileManager.default.removeItem(atPath: work) }
        try Harness.fixture(["mkbucket", bucket])
        _ = try Harness.uploadTree(["v.txt": 100], bucket: bucket, prefix: "v/", work: work)
        let prom = work + "/soak.prom"
        let r = try Harness.soak(["download", "s3://\(bucket)/v/", work + "/dest", "--endpoint-url", endpoint,
                                  "--metrics-file", prom])
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOfFile: prom, encoding: .utf8)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("soak_build_info{") }, text)
        XCTAssertTrue(line.contains("version=\"\(BuildInfo.version)\"") && line.contains("commit=\"\(commit)\""), String(line))
    }
}
