import Cache
import Foundation
import XCTest

/// The default cache directory on a fresh machine, with the real binary and nothing else in
/// its environment.
final class DefaultCacheDirectoryIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket("defdir")
        work = try Harness.tempDir("defdir")
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: work)
    }

    /// The default cache directory on a fresh machine: `$CACHE_DIRECTORY` (the first of
    /// several), else `$XDG_CACHE_HOME/soak`, else `$HOME/.cache/soak`, created with its parents,
    /// mode 0700, also with nothing else in the environment.
    func testDefaultCacheDirectoryOnAFreshMachine() throws {
        let f = work + "/f"
        try Harness.makeFile(f, size: 1000, seed: 2)
        try Harness.fixture(["put", bucket, "dd/one", f])
        let e = Harness.env
        func prewarm(_ vars: [String]) throws -> Harness.Result {
            try Harness.run("/usr/bin/env", ["-i"] + vars + [
                "AWS_ACCESS_KEY_ID=\(e["AWS_ACCESS_KEY_ID"] ?? "")", "AWS_SECRET_ACCESS_KEY=\(e["AWS_SECRET_ACCESS_KEY"] ?? "")",
                Harness.soakBinary, "prewarm", "s3://\(bucket)/dd", "--endpoint-url", endpoint], timeout: 60)
        }
        func mode(_ p: String) -> mode_t { var st = stat(); return stat(p, &st) == 0 ? st.st_mode & 0o777 : 0 }
        let home = work + "/new/home"
        let r = try prewarm(["HOME=\(home)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try CacheDirectory.classify(home + "/.cache/soak"), .marked(version: CacheFormat.version))
        for d in [work + "/new", home, home + "/.cache", home + "/.cache/soak"] { XCTAssertEqual(mode(d), 0o700, d) }

        let xdg = work + "/xdg"
        XCTAssertEqual(try prewarm(["HOME=\(home)", "XDG_CACHE_HOME=\(xdg)"]).status, 0)
        XCTAssertEqual(try CacheDirectory.classify(xdg + "/soak"), .marked(version: CacheFormat.version))

        let sd = work + "/systemd/soak"
        XCTAssertEqual(try prewarm(["HOME=\(home)", "XDG_CACHE_HOME=\(xdg)", "CACHE_DIRECTORY=\(sd):\(work)/second"]).status, 0)
        XCTAssertEqual(try CacheDirectory.classify(sd), .marked(version: CacheFormat.version))
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/second"))

        // A read-only command on a fresh machine: a clear line, non-zero, nothing created.
        let other = work + "/other/home"
        let s = try Harness.run("/usr/bin/env", ["-i", "HOME=\(other)", Harness.soakBinary, "cache", "stats"], timeout: 30)
        XCTAssertEqual(s.status, 1, s.stderr)
        XCTAssertTrue(s.stderr.contains("no soak cache"), s.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/other"))
    }
}
