import Cache
import Engine
import Foundation
import Logging
import S3
import SoakTestSupport
import SoakCore
import XCTest
@testable import Mount

/// A mount without libfuse: a `MemoryObjectStore` bucket, a real `DiskCache` in a temporary
/// directory, the namespace from the bucket's listing, a `CacheFiller` over the production
/// `FetchEngine` and an in-process `StoreTransport` (so a miss runs the real scheduler, retries
/// and block CRCs), and the `MountFilesystem` under test, whose answers the tests read directly.
final class MountFixture: @unchecked Sendable {
    // @unchecked: the clock value is guarded by `lock`; the rest is set up once.
    static let bucket = "b"
    let dir: String
    let store: MemoryObjectStore
    let cache: DiskCache
    let bucketID: Int64
    let transport: StoreTransport
    let engine: FetchEngine
    let filler: CacheFiller
    let remote: S3MountRemote
    var namespace: Namespace!
    var fs: MountFilesystem!
    let ttl: Double
    private let lock = NSLock()
    private var time = 1000.0

    /// `lazy`: directories are listed through the remote as they are used (as for a large
    /// prefix); otherwise the whole prefix is listed now. `listingStore` replaces the store for
    /// listings and HEADs (a fault-injecting one); the transport fetches from `fetchVia(store)`
    /// (a fault-injecting wrapper of the bucket).
    init(objects: [String: [UInt8]], prefix: String = "p/", ttl: Double = 60, lazy: Bool = false,
         listingStore: ObjectStore? = nil, fetchVia: (ObjectStore) -> ObjectStore = { $0 },
         readAheadBlocks: Int = 0) throws {
        dir = NSTemporaryDirectory() + "soak-mountfs-\(UUID().uuidString.prefix(8))"
        store = MemoryObjectStore()
        store.createBucket(Self.bucket)
        for (k, v) in objects { store.put(bucket: Self.bucket, key: k, v) }
        cache = try DiskCache(directory: dir)
        bucketID = try cache.index.bucketID(endpoint: "mem", name: Self.bucket)
        transport = StoreTransport(store: fetchVia(store))
        var settings = EngineSettings()
        // Quick retries: the tests wait for them.
        settings.retry = RetryPolicy(maxAttempts: 5, baseDelay: 0.005, maxDelay: 0.02)
        engine = FetchEngine(settings: settings, transport: transport, logger: Logger(label: "test"))
        filler = CacheFiller(cache: cache, submitter: engine, logger: Logger(label: "test"))
        try engine.start(reportingTo: filler)
        let listing: ObjectStore = listingStore ?? store
        remote = S3MountRemote(stores: ObjectStorePool(make: { listing }), cache: cache, bucket: Self.bucket,
                               bucketID: bucketID, retry: RetryPolicy(maxAttempts: 1, baseDelay: 0, maxDelay: 0),
                               logger: Logger(label: "test"))
        self.ttl = ttl
        namespace = Namespace(prefix: prefix, ttl: ttl, remote: remote, clock: { [unowned self] in now },
                              logger: Logger(label: "test"))
        if !lazy {
            let infos = try store.listPage(bucket: Self.bucket, prefix: prefix, delimiter: nil, continuationToken: nil,
                                           maxKeys: 100_000).objects
            namespace.populate(objects: try cache.index.recordListing(bucketID: bucketID, objects: infos, stamp: 1).objects)
        }
        fs = MountFilesystem(namespace: namespace, cache: cache, filler: filler, remote: remote, bucket: Self.bucket,
                             uid: 0, gid: 0, ttl: ttl, readAheadBlocks: readAheadBlocks, logger: Logger(label: "test"))
    }

    func shutdown() {
        engine.stop()
        filler.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    var now: Double { lock.lock(); defer { lock.unlock() }; return time }
    func advance(_ seconds: Double) { lock.lock(); time += seconds; lock.unlock() }

    // MARK: - Requests

    /// The inode at `path` (relative to the mount), looking each name up.
    func ino(_ path: String) throws -> UInt64 {
        var ino = Namespace.rootIno
        for name in path.split(separator: "/") {
            guard case .success(.entry(let a, _)) = fs.lookup(parent: ino, name: String(name)) else {
                throw FSError(.notFound, "\(path)")
            }
            ino = a.ino
        }
        return ino
    }

    /// Waits for a handler's completion (misses and revalidations complete on other threads).
    func wait(_ start: (@escaping FSCompletion) -> Void) -> FSResult {
        final class Box: @unchecked Sendable { var r: FSResult? }
        let box = Box()
        let sem = DispatchSemaphore(value: 0)
        start { box.r = $0; sem.signal() }
        guard sem.wait(timeout: .now() + 30) == .success, let r = box.r else {
            return .failure(FSError(.io, "no answer within 30 s"))
        }
        return r
    }

    func open(_ ino: UInt64, flags: Int32 = O_RDONLY) -> FSResult { wait { fs.open(ino: ino, flags: flags, done: $0) } }

    /// The handle of an open that must succeed.
    func openHandle(_ ino: UInt64, file: StaticString = #filePath, line: UInt = #line) throws -> UInt64 {
        let r = open(ino)
        guard case .success(.open(let fh, _)) = r else {
            XCTFail("open: \(r)", file: file, line: line)
            throw FSError(.io, "open failed")
        }
        return fh
    }

    func read(_ fh: UInt64, offset: Int64, size: Int) -> Result<[UInt8], FSError> {
        wait { fs.read(ino: 0, fh: fh, size: size, offset: offset, done: $0) }.flatMap { reply in
            guard case .data(let buf) = reply else { return .failure(FSError(.io, "not data: \(reply)")) }
            return .success(Array(buf.bytes))
        }
    }

    // MARK: - Cache set-up

    /// The cache row of `key` as the namespace shows it.
    func row(_ key: String) throws -> CachedObject {
        try XCTUnwrap(cache.index.objects(bucketID: bucketID, prefix: key).first { $0.key == key })
    }

    /// Puts every block of `key`'s current bytes in the cache through DiskCache's API, as a
    /// worker and the committer would.
    func cacheWhole(_ key: String) throws {
        let o = try row(key)
        let data = try XCTUnwrap(objectBytes(key))
        let fd = Glibc.open(cache.dataPath(o), O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        close(fd)
        let bs = Int(cache.blockSize)
        let blocks = stride(from: 0, to: data.count, by: bs).map { start in
            let chunk = Array(data[start..<min(data.count, start + bs)])
            return CacheIndex.LandedBlock(objectID: o.id, gen: o.gen, index: start / bs, crc: CRC32C.checksum(chunk),
                                          bytes: Int64(chunk.count))
        }
        XCTAssertEqual(try cache.commit(blocks).count, blocks.count)
    }

    func objectBytes(_ key: String) -> [UInt8]? {
        var out: [UInt8] = []
        do { _ = try store.get(bucket: Self.bucket, key: key, range: nil, ifMatch: nil) { out += $0 } } catch { return nil }
        return out
    }
}

/// Test bytes that differ per key and version.
func content(_ n: Int, seed: Int) -> [UInt8] {
    (0..<n).map { UInt8(truncatingIfNeeded: ($0 &* 31) &+ seed &* 7 &+ ($0 >> 11)) }
}

extension Result where Failure == FSError {
    /// The errno of a failure, 0 on success.
    var errno: Int32 { if case .failure(let e) = self { return e.errno }; return 0 }
}
