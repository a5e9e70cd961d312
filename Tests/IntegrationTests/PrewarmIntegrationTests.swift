import Cache
import Crypto
import Foundation
import XCTest

/// `soak prewarm` and `soak cache` against a real SeaweedFS: every byte read back from the cache,
/// kill -9 and resume, corruption, a changed object, a cap smaller than the data, shards, and two
/// processes sharing one cache.
final class PrewarmIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""
    var cacheDir = ""

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket("pw" + String(name.split(separator: " ").last!.prefix(16)).lowercased()
            .filter { $0.isLetter || $0.isNumber })
        work = try Harness.tempDir("pw")
        cacheDir = work + "/cache"
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: work) }

    func prewarm(_ prefix: String, _ extra: [String] = [], cache: String? = nil, env: [String: String] = [:],
                 timeout: Double = 180, onStart: ((Process) -> Void)? = nil) throws -> Harness.Result {
        try Harness.soak(["prewarm", "s3://\(bucket)/\(prefix)", "--endpoint-url", endpoint, "--cache-dir", cache ?? cacheDir] + extra,
                         env: env, timeout: timeout, onStart: onStart)
    }

    func upload(_ files: [String: Int], prefix: String, seed: UInt64 = 1) throws -> [String: String] {
        try Harness.uploadTree(files, bucket: bucket, prefix: prefix, work: work, seed: seed)
    }

    /// sha256 of an object read back through the cache (checksums checked as the mount would),
    /// or nil when any block is missing.
    func cachedSHA256(_ key: String, cache: String? = nil) throws -> String? {
        let c = try DiskCache(directory: cache ?? cacheDir)
        let b = try c.index.bucketID(endpoint: endpoint, name: bucket)
        guard let o = try c.index.lookup(bucketID: b, key: key) else { return nil }
        var h = SHA256()
        var off: Int64 = 0
        while off < o.size {
            guard let chunk = try c.read(o, offset: off, count: 8 << 20) else { return nil }
            h.update(data: chunk)
            off += Int64(chunk.count)
        }
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }

    func stats(_ cache: String? = nil) throws -> CacheStats { try DiskCache(directory: cache ?? cacheDir).stats() }

    func testPrewarmThenEveryObjectReadsBackIdenticalAndARerunFetchesNothing() throws {
        var files: [String: Int] = [
            "empty.dat": 0, "one.bin": 1, "block.bin": 1 << 20, "block-plus.bin": (1 << 20) + 1,
            "five.bin": 5 * 1024 * 1024 + 3, "big/twenty.bin": 20 * 1024 * 1024 + 17,
            "with space/ünïcødé 日本語.txt": 1234, "punct/+ % ? # & = ~ '.bin": 999,
        ]
        for i in 0..<120 { files["small/f\(i).bin"] = 1000 + i * 97 }
        var sums = try upload(files, prefix: "data/")
        let mp = work + "/mp"
        try Harness.makeFile(mp, size: 11 * 1024 * 1024, seed: 99)
        try Harness.fixture(["multipart", bucket, "data/multi/part.bin", mp, String(5 * 1024 * 1024)])
        sums["multi/part.bin"] = try Harness.sha256(mp)
        try Harness.fixture(["put", bucket, "other/outside.bin", mp])

        let r = try prewarm("data")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("\(sums.count) objects selected of \(sums.count) listed"), r.stderr)
        for (key, sum) in sums { XCTAssertEqual(try cachedSHA256("data/" + key), sum, key) }
        XCTAssertNil(try cachedSHA256("other/outside.bin"), "outside the prefix")
        let s = try stats()
        XCTAssertEqual(s.bytes, Int64(files.values.reduce(0, +) + 11 * 1024 * 1024))
        XCTAssertEqual(s.completeObjects, Int64(sums.count - 1), "every object but the empty one holds data")
        // Single-part objects were checked against their ETag (MD5); the multipart one cannot be.
        let c = try DiskCache(directory: cacheDir)
        let b = try c.index.bucketID(endpoint: endpoint, name: bucket)
        XCTAssertEqual(try c.index.lookup(bucketID: b, key: "data/big/twenty.bin")?.verified, .md5Match)
        XCTAssertEqual(try c.index.lookup(bucketID: b, key: "data/small/f7.bin")?.verified, .md5Match)
        XCTAssertEqual(try c.index.lookup(bucketID: b, key: "data/multi/part.bin")?.verified, .unchecked)

        let again = try prewarm("data")
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("0 fetched, \(sums.count) already cached; 0.0 MB fetched"), again.stderr)

        let v = try Harness.soak(["cache", "verify", "--cache-dir", cacheDir, "--json"])
        XCTAssertEqual(v.status, 0, v.stderr)
        XCTAssertTrue(v.stdout.contains("\"corruptBlocks\":0"), v.stdout)
        let ls = try Harness.soak(["cache", "ls", "s3://\(bucket)/data/small/", "--cache-dir", cacheDir])
        XCTAssertEqual(ls.stdout.split(separator: "\n").count, 120, ls.stdout)
    }

    func testKillNineAtSeveralPointsThenARerunCompletesAndVerifies() throws {
        var files: [String: Int] = ["huge.bin": 48 * 1024 * 1024]
        for i in 0..<24 { files["f\(i).bin"] = 2 * 1024 * 1024 + i }
        let sums = try upload(files, prefix: "k/")
        let total = Int64(files.values.reduce(0, +))
        // Slowed down so the kills land mid-transfer.
        let slow = ["MAX_SPEED": "25"]
        var fetchedBefore: Int64 = 0
        for delay in [0.4, 1.2, 2.0] {
            let r = try prewarm("k", env: slow, onStart: { p in
                usleep(useconds_t(delay * 1_000_000))
                kill(p.processIdentifier, SIGKILL)
            })
            XCTAssertTrue(r.uncaughtSignal, "prewarm finished before the kill at \(delay) s: \(r.stderr)")
            let now = try stats().bytes
            XCTAssertGreaterThanOrEqual(now, fetchedBefore, "a kill never loses recorded blocks")
            fetchedBefore = now
            // The index never claims bytes that are not there.
            let v = try Harness.soak(["cache", "verify", "--cache-dir", cacheDir, "--json"])
            XCTAssertTrue(v.stdout.contains("\"corruptBlocks\":0"), "after kill at \(delay) s: \(v.stdout)")
        }
        XCTAssertGreaterThan(fetchedBefore, 0, "some blocks were recorded before the kills")
        XCTAssertLessThan(fetchedBefore, total)
        let r = try prewarm("k")
        XCTAssertEqual(r.status, 0, r.stderr)
        for (key, sum) in sums { XCTAssertEqual(try cachedSHA256("k/" + key), sum, key) }
        // Only the missing part was fetched (blocks cut mid-flight are fetched again, at most a few).
        let fetched = try XCTUnwrap(r.stderr.firstMatch(of: /([0-9.]+) MB fetched/)).1
        XCTAssertLessThan(Double(fetched)! * 1e6, Double(total - fetchedBefore) + 40e6, r.stderr)
    }

    func testCorruptBlockIsFoundByVerifyAndFetchedAgain() throws {
        let sums = try upload(["a.bin": 3 * 1024 * 1024 + 5], prefix: "c/")
        XCTAssertEqual(try prewarm("c").status, 0)
        // Flip one byte in the middle block of the data file.
        let c = try DiskCache(directory: cacheDir)
        let o = try XCTUnwrap(c.index.lookup(bucketID: c.index.bucketID(endpoint: endpoint, name: bucket), key: "c/a.bin"))
        let fd = open(c.dataPath(o), O_RDWR)
        var byte: UInt8 = 0
        XCTAssertEqual(pread(fd, &byte, 1, 1_500_000), 1)
        byte ^= 0x01
        XCTAssertEqual(pwrite(fd, &byte, 1, 1_500_000), 1)
        close(fd)
        XCTAssertNil(try cachedSHA256("c/a.bin"), "a corrupt block is never served")

        // A fresh copy of the cache for `verify` to find the second corruption the same way.
        let v = try Harness.soak(["cache", "verify", "--cache-dir", cacheDir])
        XCTAssertEqual(v.status, 0, v.stderr)
        let r = try prewarm("c")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("1 fetched") && r.stderr.contains("1.0 MB fetched"),
                      "exactly the dropped block is fetched again: \(r.stderr)")
        XCTAssertEqual(try cachedSHA256("c/a.bin"), sums["a.bin"])

        // verify on its own finds and drops a flipped byte too.
        let fd2 = open(c.dataPath(o), O_RDWR)
        XCTAssertEqual(pwrite(fd2, &byte, 1, 10), 1)  // (byte differs from the original at 10 with high probability)
        close(fd2)
        let v2 = try Harness.soak(["cache", "verify", "--cache-dir", cacheDir, "--json"])
        XCTAssertEqual(v2.status, 0, v2.stderr)
        XCTAssertTrue(v2.stdout.contains("\"corruptBlocks\":1"), v2.stdout)
    }

    func testChangedObjectInvalidatesItsOldBlocks() throws {
        _ = try upload(["x.bin": 2 * 1024 * 1024], prefix: "v/", seed: 1)
        XCTAssertEqual(try prewarm("v").status, 0)
        let c = try DiskCache(directory: cacheDir)
        let b = try c.index.bucketID(endpoint: endpoint, name: bucket)
        let old = try XCTUnwrap(c.index.lookup(bucketID: b, key: "v/x.bin"))
        let new = try upload(["x.bin": 3 * 1024 * 1024 + 1], prefix: "v/", seed: 50)
        let r = try prewarm("v")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try cachedSHA256("v/x.bin"), new["x.bin"])
        let cur = try XCTUnwrap(c.index.lookup(bucketID: b, key: "v/x.bin"))
        XCTAssertNotEqual(cur.id, old.id)
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.dataPath(old)), "the old version's data is gone")
        XCTAssertEqual(try stats().bytes, 3 * 1024 * 1024 + 1, "only the new version is counted")
        // Deleted remotely: a complete listing removes it from the cache.
        try Harness.fixture(["delete", bucket, "v/x.bin"])
        XCTAssertEqual(try prewarm("v").status, 0)
        XCTAssertNil(try c.index.lookup(bucketID: b, key: "v/x.bin"))
        XCTAssertEqual(try stats().bytes, 0)
    }

    func testCacheSmallerThanTheDataStaysUnderItsCap() throws {
        var files: [String: Int] = [:]
        for i in 0..<20 { files["f\(i).bin"] = 2 * 1024 * 1024 }
        _ = try upload(files, prefix: "cap/")
        let cap: Int64 = 10 * 1024 * 1024
        let r = try prewarm("cap", ["--cache-size", "10M"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("cache-size"), "the user is told the selection does not fit: \(r.stderr)")
        let s = try stats()
        XCTAssertLessThanOrEqual(s.bytes, cap)
        XCTAssertGreaterThan(s.bytes, 0)
        XCTAssertGreaterThan(s.evictedBytes, 0)
        // On disk too, not just in the index.
        var used: Int64 = 0
        for f in FileManager.default.enumerator(atPath: cacheDir + "/data")!.compactMap({ $0 as? String }) {
            var st = stat()
            if stat(cacheDir + "/data/" + f, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { used += Int64(st.st_blocks) * 512 }
        }
        XCTAssertLessThanOrEqual(used, cap, "data files on disk")
        XCTAssertEqual(try Harness.soak(["cache", "verify", "--cache-dir", cacheDir]).status, 0)
    }

    func testShardsOverThreeNodesCoverEveryObjectExactlyOnce() throws {
        var files: [String: Int] = [:]
        for i in 0..<60 { files["s\(i).bin"] = 3000 + i }
        let sums = try upload(files, prefix: "sh/")
        var owner: [String: Int] = [:]
        for i in 0..<3 {
            let dir = work + "/node\(i)"
            let r = try prewarm("sh", ["--shard", "\(i)/3"], cache: dir)
            XCTAssertEqual(r.status, 0, r.stderr)
            for key in sums.keys where try cachedSHA256("sh/" + key, cache: dir) != nil {
                XCTAssertNil(owner[key], "\(key) warmed by shards \(owner[key]!) and \(i)")
                owner[key] = i
            }
            XCTAssertGreaterThan(owner.values.filter { $0 == i }.count, 5, "shard \(i) got a fair share")
        }
        XCTAssertEqual(Set(owner.keys), Set(sums.keys), "together the shards cover everything")
    }

    func testTwoProcessesPrewarmOneCacheAtOnce() throws {
        var files: [String: Int] = [:]
        for i in 0..<40 { files["t\(i).bin"] = 300_000 + i }
        files["big.bin"] = 12 * 1024 * 1024
        let sums = try upload(files, prefix: "two/")
        final class Out: @unchecked Sendable { var r: [Harness.Result?] = [nil, nil] }
        let out = Out()
        let g = DispatchGroup()
        for i in 0..<2 {
            g.enter()
            let args = ["prewarm", "s3://\(bucket)/two", "--endpoint-url", endpoint, "--cache-dir", cacheDir]
            Thread { out.r[i] = try? Harness.soak(args); g.leave() }.start()
        }
        g.wait()
        for r in out.r { XCTAssertEqual(r?.status, 0, r?.stderr ?? "did not run") }
        for (key, sum) in sums { XCTAssertEqual(try cachedSHA256("two/" + key), sum, key) }
        let s = try stats()
        XCTAssertEqual(s.bytes, Int64(files.values.reduce(0, +)), "each block counted once")
        let v = try Harness.soak(["cache", "verify", "--cache-dir", cacheDir, "--json"])
        XCTAssertTrue(v.stdout.contains("\"corruptBlocks\":0"), v.stdout)
    }

    func testBadInputIsOneLineAndNonZero() throws {
        // A cache written by a newer soak.
        _ = try DiskCache(directory: cacheDir)
        try SQLiteDatabase(path: cacheDir + "/index.db").exec("PRAGMA user_version=99")
        let cases: [([String], String)] = [
            (["prewarm", "s3://\(bucket)/x", "--endpoint-url", endpoint, "--cache-dir", cacheDir], "newer"),
            (["cache", "stats", "--cache-dir", cacheDir], "newer"),
            (["prewarm", "s3://\(bucket)/x", "--endpoint-url", endpoint, "--cache-dir", work + "/c2", "--cache-size", "lots"], "--cache-size"),
            (["prewarm", "s3://\(bucket)/x", "--endpoint-url", endpoint, "--cache-dir", work + "/c2", "--shard", "3/3"], "--shard"),
            (["prewarm", "s3://\(bucket)/x", "--endpoint-url", endpoint, "--cache-dir", "/proc/nope"], "cache directory"),
            (["prewarm", "nots3", "--cache-dir", work + "/c2"], "not an S3 URI"),
        ]
        for (args, needle) in cases {
            let r = try Harness.soak(args, timeout: 30)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertFalse(r.uncaughtSignal)
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.stderr)")
        }
    }
}
