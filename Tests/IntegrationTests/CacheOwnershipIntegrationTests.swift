import Cache
import Foundation
import S3
import SoakCore
import XCTest

/// A cache directory is soak's only if soak made it: every command, run as the real binary,
/// refuses a directory that is not a soak cache (one line, non-zero exit, nothing created,
/// nothing removed), read-only commands create nothing, and soak removes only names it made.
/// None of these needs S3: commands that would talk to it get an endpoint nothing listens on.
final class CacheOwnershipIntegrationTests: XCTestCase {
    var work = ""
    let deadEndpoint = ["--endpoint-url", "http://127.0.0.1:1"]
    let quick = ["MAX_RETRIES": "1", "RETRY_DELAY": "0.05", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"]

    override func setUpWithError() throws {
        work = try Harness.tempDir("own")
    }

    override func tearDownWithError() throws {
        umount2(work + "/mnt", Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: work)
    }

    /// Every path under `dir` (relative) with its content's SHA-256, "dir" or "other": what a
    /// refused command must leave exactly as it was.
    func snapshot(_ dir: String) throws -> [String: String] {
        var out: [String: String] = [:]
        guard let e = FileManager.default.enumerator(atPath: dir) else { return out }
        while let rel = e.nextObject() as? String {
            var st = stat()
            guard lstat(dir + "/" + rel, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: out[rel] = "dir"
            case S_IFREG: out[rel] = try Harness.sha256(dir + "/" + rel)
            default: out[rel] = "other"
            }
        }
        return out
    }

    /// A refusal: non-zero, one line on stderr naming `needle`, no crash.
    func assertRefused(_ r: Harness.Result, _ what: String, needle: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, "\(what): \(r.stderr)", file: file, line: line)
        XCTAssertFalse(r.uncaughtSignal, "\(what) crashed", file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(what): \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(needle), "\(what): \(r.stderr)", file: file, line: line)
    }

    /// Every command that takes --cache-dir, in each mode.
    func everyCommand(_ dir: String) -> [[String]] {
        let mnt = work + "/mnt"
        try? FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        return [
            ["cache", "clear", "--cache-dir", dir],
            ["cache", "verify", "--cache-dir", dir],
            ["cache", "evict", "--all", "--cache-dir", dir],
            ["cache", "evict", "s3://b/p", "--cache-dir", dir],
            ["cache", "stats", "--cache-dir", dir],
            ["cache", "ls", "--cache-dir", dir],
            ["status", "--cache-dir", dir],
            ["prewarm", "s3://b/p", "--cache-dir", dir] + deadEndpoint,
            ["mount", "s3://b/p", mnt, "--cache-dir", dir, "--foreground"] + deadEndpoint,
            ["mount", "s3://b/p", mnt, "--cache-dir", dir] + deadEndpoint,
        ]
    }

    /// The issue's reproduction: `soak cache clear --cache-dir proj` deleted proj/data/results.csv.
    func testClearRefusesAProjectDirectoryAndDeletesNothing() throws {
        let proj = work + "/proj"
        try FileManager.default.createDirectory(atPath: proj + "/data", withIntermediateDirectories: true)
        try Data("precious\n".utf8).write(to: URL(fileURLWithPath: proj + "/data/results.csv"))
        let before = try snapshot(proj)
        for args in everyCommand(proj) {
            let r = try Harness.soak(args, env: quick, timeout: 60)
            assertRefused(r, args.joined(separator: " "), needle: "not a soak cache")
            XCTAssertEqual(try snapshot(proj), before, "\(args.joined(separator: " ")) changed the directory")
        }
        XCTAssertEqual(try String(contentsOfFile: proj + "/data/results.csv", encoding: .utf8), "precious\n")
    }

    /// Another program's SQLite `index.db` is never opened with SQLite: it was switched to WAL.
    func testAForeignSQLiteIndexIsNeverOpened() throws {
        let dir = work + "/other"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        do {
            let db = try SQLiteDatabase(path: dir + "/index.db")
            try db.exec("PRAGMA journal_mode=DELETE; CREATE TABLE notes(x); INSERT INTO notes VALUES('mine')")
        }
        let before = try snapshot(dir)
        for args in everyCommand(dir) {
            let r = try Harness.soak(args, env: quick, timeout: 60)
            assertRefused(r, args.joined(separator: " "), needle: "not a soak cache")
            XCTAssertEqual(try snapshot(dir), before, "\(args.joined(separator: " ")) touched the directory")
        }
        let header = try XCTUnwrap(FileManager.default.contents(atPath: dir + "/index.db"))
        XCTAssertEqual(header[18], 1, "the file was switched to WAL mode")
    }

    /// `soak mount` created mount.log in a directory whose index.db is not SQLite at all.
    func testMountCreatesNothingInADirectoryWithANonSQLiteIndex() throws {
        let dir = work + "/notes"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("just my notes\n".utf8).write(to: URL(fileURLWithPath: dir + "/index.db"))
        let before = try snapshot(dir)
        for args in everyCommand(dir) {
            let r = try Harness.soak(args, env: quick, timeout: 60)
            assertRefused(r, args.joined(separator: " "), needle: "not a soak cache")
            XCTAssertEqual(try snapshot(dir), before, "\(args.joined(separator: " ")) touched the directory")
        }
    }

    /// Read-only commands create nothing: not the directory, not an index in an empty one.
    func testReadOnlyCommandsCreateNothing() throws {
        let missing = work + "/missing/cache"
        let empty = work + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        for dir in [missing, empty] {
            for args in [["cache", "stats", "--cache-dir", dir], ["cache", "ls", "--cache-dir", dir], ["status", "--cache-dir", dir],
                         ["cache", "verify", "--cache-dir", dir], ["cache", "clear", "--cache-dir", dir],
                         ["cache", "evict", "--all", "--cache-dir", dir]] {
                let r = try Harness.soak(args, timeout: 30)
                assertRefused(r, args.joined(separator: " "), needle: "no soak cache")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/missing"), "a read-only command created the directory")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: empty), [])
    }

    /// A soak cache holding one cached object (made through the library, as prewarm would).
    func makeCache(_ dir: String) throws -> (DiskCache, CachedObject) {
        let c = try DiskCache(directory: dir)
        let b = try c.index.bucketID(endpoint: "http://127.0.0.1:1", name: "b")
        let o = try c.index.recordListing(bucketID: b, objects: [ObjectInfo(key: "p/k", size: 10, etag: "e", lastModified: 1)],
                                          stamp: 1).objects[0]
        let bytes = [UInt8](repeating: 7, count: 10)
        FileManager.default.createFile(atPath: c.dataPath(o), contents: Data(bytes))
        _ = try c.commit([.init(objectID: o.id, gen: o.gen, index: 0, crc: CRC32C.checksum(bytes), bytes: 10)])
        return (c, o)
    }

    /// verify and clear remove only the data-file names soak makes (`data/ID.GEN`).
    func testVerifyAndClearRemoveOnlyNamesSoakMade() throws {
        let dir = work + "/c"
        let (c, o) = try makeCache(dir)
        let strangers = ["data/notes.txt", "data/1.0.bak", "data/01.0", "data/-1.0", "readme.txt"]
        for s in strangers { try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/" + s)) }
        FileManager.default.createFile(atPath: c.dataPath(id: 999, gen: 0), contents: Data([1]))  // a real orphan
        let v = try Harness.soak(["cache", "verify", "--cache-dir", dir])
        XCTAssertEqual(v.status, 0, v.stderr)
        XCTAssertTrue(v.stdout.contains("1 orphan files removed"), v.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.dataPath(id: 999, gen: 0)))
        XCTAssertTrue(FileManager.default.fileExists(atPath: c.dataPath(o)))
        let cl = try Harness.soak(["cache", "clear", "--cache-dir", dir])
        XCTAssertEqual(cl.status, 0, cl.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.dataPath(o)))
        for s in strangers { XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + s), "\(s) was removed") }
    }

    /// Evicting everything takes --all; an empty prefix is a usage error, not "everything".
    func testEvictingEverythingTakesAll() throws {
        let dir = work + "/c"
        let (c, o) = try makeCache(dir)
        for args in [["cache", "evict", "", "--cache-dir", dir], ["cache", "evict", "--cache-dir", dir],
                     ["cache", "evict", "s3://b/p", "--all", "--cache-dir", dir]] {
            let r = try Harness.soak(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: c.dataPath(o)), "\(args) evicted")
        }
        let r = try Harness.soak(["cache", "evict", "--all", "--cache-dir", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("evicted 1 objects"), r.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.dataPath(o)))
    }

    /// A cache made by an earlier soak (format 3, no marker) is still soak's: recognised by its
    /// index header, then marked. An empty directory or one holding only lost+found is usable.
    func testLegacyCachesAndDedicatedDisksAreUsable() throws {
        let legacy = work + "/legacy"
        _ = try makeCache(legacy)
        try FileManager.default.removeItem(atPath: legacy + "/" + CacheDirectory.markerName)
        let r = try Harness.soak(["cache", "stats", "--cache-dir", legacy])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("1 with data"), r.stdout)
        XCTAssertEqual(try CacheDirectory.classify(legacy), .marked(version: CacheFormat.version))

        let disk = work + "/disk"
        try FileManager.default.createDirectory(atPath: disk + "/lost+found", withIntermediateDirectories: true)
        let p = try Harness.soak(["prewarm", "s3://b/p", "--cache-dir", disk] + deadEndpoint, env: quick, timeout: 60)
        XCTAssertFalse(p.stderr.contains("not a soak cache"), p.stderr)
        XCTAssertEqual(try CacheDirectory.classify(disk), .marked(version: CacheFormat.version))
    }
}
