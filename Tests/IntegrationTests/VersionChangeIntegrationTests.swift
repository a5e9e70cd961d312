import Cache
import Crypto
import Download
import Engine
import Foundation
import Logging
import S3
import SoakCore
import XCTest

/// Objects that really change (or go) between their listing and their GETs, against a real
/// SeaweedFS: it answers the If-Match GETs with 412, soak asks HEAD, and download and prewarm
/// fetch the new version whole and right (a deleted key fails with one line). The download and
/// the prewarm run in-process, with the soak binary's workers, so the change can be made at the
/// exact moment between the listing and the first GET.
final class VersionChangeIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket("vc" + String(name.split(separator: " ").last!.prefix(16)).lowercased()
            .filter { $0.isLetter || $0.isNumber })
        work = try Harness.tempDir("vc")
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: work) }

    /// Lists through the real store, then, once, replaces or deletes objects before handing the
    /// page on: every GET soak then sends for them names a version that is gone. Keys in
    /// `deleteBeforeHead` are deleted when soak first asks HEAD about them (after their 412).
    final class ChangingAfterListing: ObjectStore, @unchecked Sendable {
        let inner: ObjectStore
        let bucket: String
        private let lock = NSLock()
        private var replace: [String: String]  // key → local file of its new content
        private var delete: [String]
        private var deleteBeforeHead: Set<String>

        init(_ inner: ObjectStore, bucket: String, replace: [String: String], delete: [String] = [],
             deleteBeforeHead: Set<String> = []) {
            self.inner = inner; self.bucket = bucket; self.replace = replace; self.delete = delete
            self.deleteBeforeHead = deleteBeforeHead
        }

        func listPage(bucket: String, prefix: String, delimiter: String?, continuationToken: String?,
                      maxKeys: Int) throws -> ListPage {
            let page = try inner.listPage(bucket: bucket, prefix: prefix, delimiter: delimiter,
                                          continuationToken: continuationToken, maxKeys: maxKeys)
            lock.lock()
            let (r, d) = (replace, delete)
            replace = [:]; delete = []
            lock.unlock()
            for (key, file) in r.sorted(by: { $0.key < $1.key }) { try Harness.fixture(["put", self.bucket, key, file]) }
            for key in d { try Harness.fixture(["delete", self.bucket, key]) }
            return page
        }

        func head(bucket: String, key: String) throws -> ObjectInfo {
            lock.lock()
            let now = deleteBeforeHead.remove(key) != nil
            lock.unlock()
            if now { try Harness.fixture(["delete", self.bucket, key]) }
            return try inner.head(bucket: bucket, key: key)
        }

        func get(bucket: String, key: String, range: ClosedRange<Int64>?, ifMatch: String?,
                 sink: (UnsafeRawBufferPointer) throws -> Void) throws -> GetResult {
            try inner.get(bucket: bucket, key: key, range: range, ifMatch: ifMatch, sink: sink)
        }
    }

    private func builder() throws -> S3RequestBuilder {
        let env = Harness.env
        return S3RequestBuilder(endpoint: try S3Endpoint(url: endpoint, region: env["AWS_REGION"] ?? "us-east-1"),
                                credentials: Credentials(accessKeyId: env["AWS_ACCESS_KEY_ID"] ?? "",
                                                         secretAccessKey: env["AWS_SECRET_ACCESS_KEY"] ?? ""))
    }

    private func settings() -> EngineSettings {
        var s = EngineSettings()
        s.retry = RetryPolicy(maxAttempts: 4, baseDelay: 0.05, maxDelay: 0.2)
        s.initialWorkers = 2
        s.maxWorkers = 2
        return s
    }

    /// Uploads the old versions and writes the new ones locally: key → (local file, sha256).
    private func prepare(prefix: String) throws -> (new: [String: String], sums: [String: String]) {
        let old: [String: Int] = ["small.bin": 100_000, "big.bin": 20 * 1024 * 1024 + 5, "same.bin": 4096, "gone.bin": 777,
                                  "vanish.bin": 17 * 1024 * 1024 + 1]
        for (i, (k, size)) in old.sorted(by: { $0.key < $1.key }).enumerated() {
            try Harness.makeFile(work + "/old\(i)", size: size, seed: UInt64(10 + i))
            try Harness.fixture(["put", bucket, prefix + k, work + "/old\(i)"])
        }
        // The new versions differ in size too: a part planned for the old size must not survive.
        try Harness.makeFile(work + "/new-small", size: 150_001, seed: 77)
        try Harness.makeFile(work + "/new-big", size: 18 * 1024 * 1024 + 3, seed: 78)
        let same = try Harness.sha256(work + "/old\(old.keys.sorted().firstIndex(of: "same.bin")!)")
        // vanish.bin: replaced after the listing (its GETs answer 412), deleted before the HEAD.
        return (["\(prefix)small.bin": work + "/new-small", "\(prefix)big.bin": work + "/new-big",
                 "\(prefix)vanish.bin": work + "/new-small"],
                ["small.bin": try Harness.sha256(work + "/new-small"), "big.bin": try Harness.sha256(work + "/new-big"),
                 "same.bin": same])
    }

    func testDownloadFetchesTheNewVersionOfObjectsChangedAfterListing() throws {
        let (new, sums) = try prepare(prefix: "d/")
        let b = try builder()
        let store = ChangingAfterListing(try CurlObjectStore(builder: b, options: TransportOptions()), bucket: bucket,
                                         replace: new, delete: ["d/gone.bin"], deleteBeforeHead: ["d/vanish.bin"])
        let dest = work + "/dest"
        let d = Downloader(options: DownloadOptions(bucket: bucket, prefix: "d/", destination: dest, filter: KeyFilter([])),
                           store: store, builder: b, settings: settings(), workerExecutable: Harness.soakBinary,
                           logger: Logger(label: "t"))
        let s = try d.run()
        XCTAssertEqual(s.failures.map(\.key).sorted(), ["d/gone.bin", "d/vanish.bin"], "\(s.failures)")
        XCTAssertTrue(s.failures.allSatisfy { $0.reason.contains("deleted since it was listed") }, "\(s.failures)")
        XCTAssertTrue(s.failures.contains { $0.key.hasSuffix("vanish.bin") && $0.reason.contains("412, then HEAD 404") },
                      "asked HEAD after the 412: \(s.failures)")
        XCTAssertEqual(s.downloaded, 3)
        for (k, sum) in sums { XCTAssertEqual(try Harness.sha256(dest + "/" + k), sum, "\(k): the new version, whole") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/gone.bin"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/vanish.bin"))
        let partial = (try? FileManager.default.contentsOfDirectory(atPath: dest + "/.soak-partial")) ?? []
        XCTAssertEqual(partial, [], "nothing of the old versions is left")
    }

    func testPrewarmRecordsAndFillsTheNewVersionOfObjectsChangedAfterListing() throws {
        let (new, sums) = try prepare(prefix: "p/")
        let b = try builder()
        let store = ChangingAfterListing(try CurlObjectStore(builder: b, options: TransportOptions()), bucket: bucket,
                                         replace: new, delete: ["p/gone.bin"], deleteBeforeHead: ["p/vanish.bin"])
        let cache = try DiskCache(directory: work + "/cache")
        let p = Prewarmer(options: PrewarmOptions(bucket: bucket, prefix: "p/", endpoint: endpoint, filter: KeyFilter([])),
                          store: store, cache: cache, builder: b, settings: settings(),
                          workerExecutable: Harness.soakBinary, logger: Logger(label: "t"))
        let s = try p.run()
        XCTAssertEqual(s.failures.map(\.key).sorted(), ["p/gone.bin", "p/vanish.bin"], "\(s.failures)")
        XCTAssertTrue(s.failures.allSatisfy { $0.reason.contains("deleted since it was listed") }, "\(s.failures)")
        XCTAssertTrue(s.failures.contains { $0.key.hasSuffix("vanish.bin") && $0.reason.contains("412, then HEAD 404") },
                      "asked HEAD after the 412: \(s.failures)")
        XCTAssertEqual(s.filled, 3)
        let bid = try cache.index.bucketID(endpoint: endpoint, name: bucket)
        for (k, sum) in sums {
            let o = try XCTUnwrap(cache.index.lookup(bucketID: bid, key: "p/" + k))
            XCTAssertTrue(o.isComplete, k)
            XCTAssertEqual(try cachedSHA256(cache, o), sum, "\(k): the new version, whole, under its own row")
        }
        var current = Set<String>()
        for k in ["big.bin", "small.bin", "same.bin", "gone.bin", "vanish.bin"] {
            if let o = try cache.index.lookup(bucketID: bid, key: "p/" + k) { current.insert("\(o.id).\(o.gen)") }
        }
        let dataFiles = Set(try FileManager.default.contentsOfDirectory(atPath: work + "/cache/data"))
        XCTAssertTrue(dataFiles.isSubset(of: current), "no data file of an old version is left: \(dataFiles) \(current)")
    }

    private func cachedSHA256(_ c: DiskCache, _ o: CachedObject) throws -> String? {
        var h = SHA256()
        var off: Int64 = 0
        while off < o.size {
            guard let chunk = try c.read(o, offset: off, count: 8 << 20) else { return nil }
            h.update(data: chunk)
            off += Int64(chunk.count)
        }
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
