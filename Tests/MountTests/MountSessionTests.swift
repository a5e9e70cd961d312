import Cache
import Engine
import Foundation
import Logging
import S3
import SoakCore
import SoakTestSupport
import Synchronization
import XCTest
@testable import Mount

/// `MountService.start()` and the `MountSession` it returns, without libfuse: the start over a
/// `MemoryObjectStore` bucket (listing into the catalog, namespace, engine and filler over a
/// `StoreTransport`), listing refreshes, a listing that fails at start, what `serve` runs (control
/// socket, metrics, `--prefetch`) and `stop`.
final class MountSessionTests: XCTestCase {
    private static let bucket = "b"
    private static let endpoint = "mem"
    private var dir = ""
    private var sessions: [MountSession] = []
    private let bs = Int(CacheFormat.blockSize)

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "soak-mountsession-\(UUID().uuidString.prefix(8))"
    }

    override func tearDown() {
        for s in sessions { s.stop() }
        sessions = []
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Counts the transports the service made (it makes one per start, after the listing).
    private final class Made: Sendable {
        let transports = Mutex<[StoreTransport]>([])
    }

    private func bucket(_ objects: [String: [UInt8]]) -> MemoryObjectStore {
        let mem = MemoryObjectStore()
        mem.createBucket(Self.bucket)
        for (k, v) in objects { _ = mem.put(bucket: Self.bucket, key: k, v) }
        return mem
    }

    private func service(_ store: ObjectStore, cache: DiskCache, made: Made = Made(),
                         _ configure: (inout MountOptions) -> Void = { _ in }) throws -> MountService {
        var options = MountOptions(bucket: Self.bucket, prefix: "p/", endpoint: Self.endpoint, mountpoint: dir + "/mnt",
                                   filter: KeyFilter([]))
        configure(&options)
        var settings = EngineSettings()
        // Quick retries: the tests wait for them.
        settings.retry = RetryPolicy(maxAttempts: 2, baseDelay: 0.005, maxDelay: 0.02)
        let builder = S3RequestBuilder(endpoint: try S3Endpoint(url: "http://127.0.0.1:9", region: "us-east-1"),
                                       credentials: Credentials(accessKeyId: "k", secretAccessKey: "s"))
        return MountService(options: options, makeStore: { store }, cache: cache, builder: builder, settings: settings,
                            workerExecutable: "/nonexistent", logger: Logger(label: "test"), transport: {
                                let t = StoreTransport(store: store)
                                made.transports.withLock { $0.append(t) }
                                return t
                            })
    }

    private func start(_ service: MountService) throws -> MountSession {
        let s = try service.start()
        sessions.append(s)
        return s
    }

    private func names(_ fs: MountFilesystem, _ ino: UInt64 = Namespace.rootIno) -> [String] {
        guard case .success(.open(let fh, _)) = fs.opendir(ino: ino),
              case .success(.directory(let entries, _)) = fs.readdir(ino: ino, fh: fh, offset: 0) else { return ["(failed)"] }
        _ = fs.releasedir(ino: ino, fh: fh)
        return entries.map(\.name).filter { $0 != "." && $0 != ".." }
    }

    private func ino(_ fs: MountFilesystem, _ name: String, in parent: UInt64 = Namespace.rootIno) -> UInt64? {
        guard case .success(.entry(let a, _)) = fs.lookup(parent: parent, name: name) else { return nil }
        return a.ino
    }

    /// Opens and reads a whole file through the session's file system (a miss is fetched).
    private func readAll(_ fs: MountFilesystem, _ ino: UInt64, size: Int) -> [UInt8]? {
        func wait(_ start: (@escaping FSCompletion) -> Void) -> FSResult? {
            let result = Mutex<FSResult?>(nil)
            let sem = DispatchSemaphore(value: 0)
            start { r in result.withLock { $0 = r }; sem.signal() }
            guard sem.wait(timeout: .now() + 30) == .success else { return nil }
            return result.withLock { $0 }
        }
        guard case .success(.open(let fh, _)) = wait({ fs.open(ino: ino, flags: O_RDONLY, done: $0) }) else { return nil }
        defer { _ = fs.release(ino: ino, fh: fh) }
        guard case .success(.data(let buf)) = wait({ fs.read(ino: ino, fh: fh, size: size, offset: 0, done: $0) }) else {
            return nil
        }
        return Array(buf.bytes)
    }

    // MARK: - Start

    func testStartListsThePrefixIntoTheCatalogAndServesItsFiles() throws {
        let big = content(2 * bs + 5, seed: 1)
        let store = bucket(["p/a.txt": content(100, seed: 2), "p/d/big.bin": big, "p/d/e/f": [7], "other/x": [1]])
        let cache = try DiskCache(directory: dir)
        // A row (with data) for a key the bucket no longer has: the complete listing drops it.
        let bucketID = try cache.bucketID(endpoint: Self.endpoint, name: Self.bucket)
        let gone = try XCTUnwrap(cache.recordListing(bucketID: bucketID, objects: [
            ObjectInfo(key: "p/gone", size: 3, etag: "\"g\"", lastModified: nil)], stamp: 1).first)
        XCTAssertTrue(FileManager.default.createFile(atPath: cache.dataPath(gone), contents: Data([1, 2, 3])))

        let made = Made()
        let session = try start(service(store, cache: cache, made: made))
        XCTAssertEqual(session.bucketID, bucketID, "the cache's id for the bucket")
        XCTAssertEqual(made.transports.withLock { $0.count }, 1)
        XCTAssertEqual(try cache.objects(bucketID: bucketID, prefix: "p/").map(\.key).sorted(),
                       ["p/a.txt", "p/d/big.bin", "p/d/e/f"], "listed whole; keys outside the prefix are not")
        XCTAssertFalse(FileManager.default.fileExists(atPath: cache.dataPath(gone)), "a deleted key's data is unlinked")
        let t = session.namespace.totals
        XCTAssertEqual(t.files, 3)
        XCTAssertEqual(t.bytes, Int64(100 + big.count + 1))

        let fs = session.filesystem
        XCTAssertEqual(names(fs), ["a.txt", "d"])
        let d = try XCTUnwrap(ino(fs, "d"))
        XCTAssertEqual(names(fs, d), ["big.bin", "e"])
        let b = try XCTUnwrap(ino(fs, "big.bin", in: d))
        XCTAssertEqual(readAll(fs, b, size: big.count), big, "a miss, fetched through the session's engine")
        XCTAssertEqual(readAll(fs, b, size: big.count), big, "then a hit")
        XCTAssertEqual(fs.readCounts.misses, 1)
        XCTAssertEqual(fs.readCounts.hits, 1)
        XCTAssertTrue(eventually { try cache.objects(bucketID: bucketID, prefix: "p/d/big.bin").first?.isComplete == true },
                      "the filler recorded every block")
    }

    func testALargePrefixIsListedPerDirectoryAsUsed() throws {
        let store = bucket(["p/a": [1], "p/d/b": [2], "p/d/c": [3]])
        let cache = try DiskCache(directory: dir)
        let session = try start(service(store, cache: cache) { $0.eagerListingKeys = 1 })
        let lists = { store.calls["list", default: 0] }
        XCTAssertEqual(lists(), 2, "a first page over eagerListingKeys, then the root with a delimiter")
        XCTAssertEqual(try cache.objects(bucketID: session.bucketID, prefix: "p/").count, 3, "the page seen is recorded")
        XCTAssertEqual(names(session.filesystem), ["a", "d"])
        let d = try XCTUnwrap(ino(session.filesystem, "d"))
        XCTAssertEqual(lists(), 2)
        XCTAssertEqual(names(session.filesystem, d), ["b", "c"])
        XCTAssertEqual(lists(), 3, "d/ is listed once used")

        let small = bucket(["p/a": [1], "p/d/b": [2]])
        let whole = try start(service(small, cache: try DiskCache(directory: dir + "/small")))
        XCTAssertEqual(names(whole.filesystem, try XCTUnwrap(ino(whole.filesystem, "d"))), ["b"])
        XCTAssertEqual(small.calls["list", default: 0], 1, "a small prefix: one listing, every directory filled")
    }

    func testListingRefreshSeesPutsAndDeletes() throws {
        for eager in [true, false] {
            let store = bucket(["p/a": [1], "p/b": [2], "p/d/c": [3]])
            let cache = try DiskCache(directory: dir + (eager ? "/eager" : "/lazy"))
            // TTL 0: every use of a directory lists it again.
            let session = try start(service(store, cache: cache) {
                $0.metadataTTL = 0
                $0.eagerListingKeys = eager ? 100 : 0
            })
            let fs = session.filesystem
            XCTAssertEqual(names(fs), ["a", "b", "d"], "eager: \(eager)")
            let a = try XCTUnwrap(ino(fs, "a"))
            store.delete(bucket: Self.bucket, key: "p/b")
            _ = store.put(bucket: Self.bucket, key: "p/new", [4, 5])
            _ = store.put(bucket: Self.bucket, key: "p/a", [9, 9, 9])
            // Listings are stamped in milliseconds: a key is known gone by a listing stamped later
            // than the one that last saw it.
            usleep(2000)
            XCTAssertEqual(names(fs), ["a", "d", "new"], "eager: \(eager)")
            XCTAssertNil(ino(fs, "b"), "eager: \(eager)")
            XCTAssertNotEqual(ino(fs, "a"), a, "a changed object is a new inode (eager: \(eager))")
            XCTAssertEqual(readAll(fs, try XCTUnwrap(ino(fs, "a")), size: 10), [9, 9, 9], "eager: \(eager)")
            let keys = try cache.objects(bucketID: session.bucketID, prefix: "p/").map(\.key).sorted()
            XCTAssertEqual(keys, ["p/a", "p/d/c", "p/new"], "the catalog dropped the deleted key (eager: \(eager))")
        }
    }

    func testAListingFailureAtStartIsAClearErrorAndStartsNothing() throws {
        let denied = S3Error(kind: .http, operation: "ListObjectsV2", bucket: Self.bucket, status: 403,
                             code: "AccessDenied", message: "Access Denied")
        for eager in [true, false] {
            let cache = try DiskCache(directory: dir + (eager ? "/eager" : "/lazy"))
            let made = Made()
            let store = FaultInjectingStore(bucket(["p/a": [1]]), failures: [denied])
            let port = try freePort()
            let service = try service(store, cache: cache, made: made) {
                $0.eagerListingKeys = eager ? 100 : 0
                $0.metricsAddress = "127.0.0.1:\(port)"
            }
            XCTAssertThrowsError(try service.start(), "eager: \(eager)") { error in
                XCTAssertEqual("\(error)", "ListObjectsV2 s3://b failed: HTTP 403 AccessDenied: Access Denied")
            }
            XCTAssertEqual(made.transports.withLock { $0.count }, 0, "no engine was started (eager: \(eager))")
            XCTAssertFalse(canConnect(port: port), "the metrics listener is closed again (eager: \(eager))")
        }
        // A missing bucket, as S3 says it.
        let cache = try DiskCache(directory: dir + "/missing")
        let service = try service(MemoryObjectStore(), cache: cache)
        XCTAssertThrowsError(try service.start()) { error in
            XCTAssertEqual("\(error)", "ListObjectsV2 s3://b failed: HTTP 404 NoSuchBucket: bucket not found")
        }
    }

    // MARK: - Serving and stop

    func testServeAnswersStatusAndMetricsAndStopEndsEverything() throws {
        let data = content(bs + 10, seed: 3)
        let store = bucket(["p/f": data, "p/g": [1, 2]])
        let cache = try DiskCache(directory: dir)
        let made = Made()
        let port = try freePort()
        let svc = try service(store, cache: cache, made: made) { $0.metricsAddress = "127.0.0.1:\(port)" }
        let session = try start(svc)
        let fs = session.filesystem
        let f = try XCTUnwrap(ino(fs, "f"))
        XCTAssertEqual(readAll(fs, f, size: data.count), data)
        XCTAssertEqual(readAll(fs, f, size: data.count), data)
        XCTAssertTrue(eventually { try cache.usage().cachedBytes == data.count }, "the filler recorded the blocks")
        XCTAssertNil(ControlSocket.connect(cacheDir: cache.directory), "no control socket before serve")

        session.serve()
        let status = try XCTUnwrap(controlStatus(cache.directory))
        XCTAssertEqual(status.source, "s3://b/p/")
        XCTAssertEqual(status.mountpoint, dir + "/mnt")
        XCTAssertEqual(status.pid, getpid())
        XCTAssertEqual(status.hits, 1)
        XCTAssertEqual(status.misses, 1)
        XCTAssertEqual(status.cachedBytes, Int64(data.count))
        let scrape = try XCTUnwrap(httpGet(port: port))
        XCTAssertTrue(scrape.contains("soak_cache_hits_total 1"), scrape)
        XCTAssertTrue(scrape.contains("soak_cache_bytes \(data.count)"), scrape)
        XCTAssertThrowsError(try svc.checkCacheDirectoryFree(), "a second mount of the cache is refused") {
            XCTAssertEqual("\($0)", "cache directory \(cache.directory) belongs to a running mount; use another --cache-dir")
        }
        let wal = cache.directory + "/index.db-wal"
        XCTAssertGreaterThan(fileSize(wal), 0, "the index has changes outside its main file")

        session.stop()
        XCTAssertNil(ControlSocket.connect(cacheDir: cache.directory), "the control socket is gone")
        XCTAssertFalse(FileManager.default.fileExists(atPath: ControlSocket.path(cacheDir: cache.directory)))
        XCTAssertFalse(canConnect(port: port), "the metrics listener is closed")
        XCTAssertEqual(session.threads.wait(timeout: .now()), .success, "every thread serve started has ended")
        let transport = try XCTUnwrap(made.transports.withLock { $0.first })
        XCTAssertFalse(transport.start(FetchOrder(id: 1, bucket: "b", key: "p/g", etag: nil, start: 0, end: 1, path: dir + "/x",
                                                  fileOffset: 0, lane: .urgent)), "the engine stopped its transport")
        XCTAssertEqual(fileSize(wal), 0, "the index was checkpointed")
        let stats = try cache.stats()
        XCTAssertEqual(stats.hits, 1, "the counters were flushed")
        XCTAssertEqual(stats.misses, 1)
        session.stop()  // again: nothing to do
    }

    func testPrefetchWarmsThePrefixAndStopsWithTheSession() throws {
        let objects = ["p/a": content(bs + 1, seed: 4), "p/b/c": content(300, seed: 5), "p/skip.tmp": [1]]
        let store = bucket(objects)
        let cache = try DiskCache(directory: dir)
        let session = try start(service(store, cache: cache) {
            $0.prefetch = true
            $0.filter = KeyFilter([.exclude("*.tmp")])
        })
        session.serve()
        func cachedKeys() throws -> [String] {
            try cache.objects(bucketID: session.bucketID, prefix: "p/").filter(\.isComplete).map(\.key).sorted()
        }
        _ = eventually { try cachedKeys() == ["p/a", "p/b/c"] }
        XCTAssertEqual(try cachedKeys(), ["p/a", "p/b/c"], "every selected object is cached; the filter holds")
        session.stop()
        XCTAssertEqual(session.threads.wait(timeout: .now()), .success, "the prefetch thread has ended")
    }

    func testAPrewarmHandedOverRunsOnTheSessionsEngine() throws {
        let store = bucket(["p/a": content(bs + 3, seed: 6), "q/b": content(10, seed: 7)])
        let cache = try DiskCache(directory: dir)
        let made = Made()
        let session = try start(service(store, cache: cache, made: made))
        session.serve()
        let fd = try XCTUnwrap(ControlSocket.connect(cacheDir: cache.directory))
        defer { close(fd) }
        var replies: [ControlReply] = []
        try ControlSocket.exchange(fd: fd, ControlRequest(op: .prewarm, prefix: "q/")) { replies.append($0) }
        let summary = try XCTUnwrap(replies.last?.summary, "\(replies)")
        XCTAssertEqual(summary.selected, 1)
        XCTAssertEqual(summary.failures.map(\.description), [])
        XCTAssertEqual(made.transports.withLock { $0.count }, 1, "no engine of its own")
        let b = try XCTUnwrap(cache.objects(bucketID: session.bucketID, prefix: "q/").first)
        XCTAssertTrue(b.isComplete)

        let bad = try XCTUnwrap(ControlSocket.connect(cacheDir: cache.directory))
        defer { close(bad) }
        var errors: [String] = []
        try ControlSocket.exchange(fd: bad, ControlRequest(op: .prewarm, shard: "7/2")) { if let e = $0.error { errors.append(e) } }
        XCTAssertEqual(errors, ["invalid --shard '7/2': expected I/N with 0 <= I < N, e.g. 0/4"])
    }

    // MARK: - Helpers

    /// Whether `condition` holds within 30 s (asked every 10 ms).
    private func eventually(_ condition: () throws -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: 30)
        while Date() < deadline {
            if (try? condition()) == true { return true }
            usleep(10_000)
        }
        return false
    }

    private func controlStatus(_ cacheDir: String) throws -> MountStatus? {
        let fd = try XCTUnwrap(ControlSocket.connect(cacheDir: cacheDir))
        defer { close(fd) }
        var status: MountStatus?
        try ControlSocket.exchange(fd: fd, ControlRequest(op: .status)) { status = $0.status ?? status }
        return status
    }

    private func fileSize(_ path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? -1
    }

    /// A loopback port nothing listens on now.
    private func freePort() throws -> UInt16 {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(s) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) == 0 && getsockname(s, $0, &len) == 0 }
        }
        guard ok else { throw FSError(.io, "no free port") }
        return UInt16(bigEndian: a.sin_port)
    }

    private func connect(port: UInt16) -> Int32? {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { close(s); return nil }
        return s
    }

    private func canConnect(port: UInt16) -> Bool {
        guard let s = connect(port: port) else { return false }
        close(s)
        return true
    }

    private func httpGet(port: UInt16) throws -> String? {
        guard let s = connect(port: port) else { return nil }
        defer { close(s) }
        try Syscall.writeAll(s, Array("GET /metrics HTTP/1.0\r\n\r\n".utf8), path: "metrics")
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try Syscall.read(s, into: $0, path: "metrics") }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
