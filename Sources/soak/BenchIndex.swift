import Cache
import Foundation
import S3
import SoakCore

/// `soak __bench-index N`: records a synthetic N-key listing into a fresh cache index the way
/// `soak prewarm` does (pages of 1000) and prints the time and the index bytes per object.
/// Used by scripts/bench-prewarm; not a user command.
enum BenchIndex {
    static func run(_ args: [String]) -> Int32 {
        let n = args.first.flatMap { Int($0) } ?? 100_000
        let dir = NSTemporaryDirectory() + "soak-bench-index-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let cache = try DiskCache(directory: dir)
            let bucket = try cache.index.bucketID(endpoint: "http://127.0.0.1:8333", name: "bench")
            var rng = SeededRandom(seed: 42)
            let t0 = MonotonicTime.now()
            var i = 0
            while i < n {
                var page: [ObjectInfo] = []
                for j in i..<min(n, i + 1000) {
                    let etag = (0..<4).map { _ in String(format: "%08x", UInt32.random(in: 0...UInt32.max, using: &rng)) }.joined()
                    page.append(ObjectInfo(key: String(format: "datasets/train/shard-%05d/sample-%08d.jpg", j / 1000, j),
                                           size: Int64.random(in: 1...(1 << 24), using: &rng), etag: etag,
                                           lastModified: 1_700_000_000 + Double(j)))
                }
                _ = try cache.index.recordListing(bucketID: bucket, objects: page, stamp: 1)
                i += page.count
            }
            _ = try cache.index.finishListing(bucketID: bucket, prefix: "datasets/", stamp: 1)
            let seconds = MonotonicTime.now() - t0
            try cache.index.checkpoint()
            let bytes = cache.index.fileBytes()
            print(String(format: "recorded %d objects in %.2f s; index %.1f MB, %.0f bytes/object", n, seconds,
                         Double(bytes) / 1e6, Double(bytes) / Double(max(n, 1))))
            return 0
        } catch {
            FileHandle.standardError.write(Data("soak: error: \(error)\n".utf8))
            return 1
        }
    }
}
