import Cache
import Engine
import Foundation
import SoakCore

/// `soak __bench-md5 FILE...`: hashes the files one after another with the one-stream MD5, then
/// `MD5Lanes.width` at a time side by side (`FileMD5.of(files:)`, what the cache's MD5 checks use), and
/// prints both rates. The files should be in the page cache (run it twice). Not a user command.
enum BenchMD5 {
    static func run(_ paths: [String]) -> Int32 {
        let files = paths.compactMap { p -> (path: String, size: Int64)? in
            guard let a = try? FileManager.default.attributesOfItem(atPath: p), let n = a[.size] as? NSNumber else { return nil }
            return (p, n.int64Value)
        }
        guard !files.isEmpty, files.count == paths.count else {
            FileHandle.standardError.write(Data("soak: error: __bench-md5 needs readable files\n".utf8))
            return 2
        }
        let bytes = Double(files.reduce(0) { $0 + $1.size })
        var t0 = MonotonicTime.now()
        let one = files.map { FileMD5.of(path: $0.path, size: $0.size) }
        let tOne = MonotonicTime.now() - t0
        t0 = MonotonicTime.now()
        var lanes: [String?] = []
        var i = 0
        while i < files.count {
            let group = Array(files[i..<min(files.count, i + MD5Lanes.width)])
            lanes += FileMD5.of(files: group)
            i += group.count
        }
        let tLanes = MonotonicTime.now() - t0
        print(String(format: "%d files, %.0f MB: one at a time %.3f s (%.0f MB/s); %d side by side %.3f s (%.0f MB/s); %@",
                     files.count, bytes / 1e6, tOne, bytes / 1e6 / tOne, MD5Lanes.width, tLanes, bytes / 1e6 / tLanes,
                     one == lanes ? "same sums" : "SUMS DIFFER"))
        return one == lanes ? 0 : 1
    }
}
