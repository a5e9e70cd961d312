import Engine
import Foundation
import S3
import SoakCore

/// What the engine, fill, download and prewarm tests share: a bucket in memory, quick engine
/// settings, scratch directories.
public enum StoreFixture {
    public static let bucket = "b"

    /// Settings with quick retries (the tests wait for them).
    public static func settings(attempts: Int = 5) -> EngineSettings {
        var s = EngineSettings()
        s.retry = RetryPolicy(maxAttempts: attempts, baseDelay: 0.005, maxDelay: 0.02)
        return s
    }

    /// Deterministic, position-dependent bytes (`seed` makes versions differ).
    public static func content(_ n: Int64, seed: UInt8 = 0) -> [UInt8] {
        (0..<Int(n)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7 &+ Int(seed) &* 13 &+ ($0 >> 20)) }
    }

    public static func store(_ objects: [String: [UInt8]]) -> MemoryObjectStore {
        let s = MemoryObjectStore()
        s.createBucket(bucket)
        for (k, v) in objects { s.put(bucket: bucket, key: k, v) }
        return s
    }

    /// A builder no request is ever sent with (the StoreTransport does not sign).
    public static func builder() throws -> S3RequestBuilder {
        S3RequestBuilder(endpoint: try S3Endpoint(url: "http://127.0.0.1:9", region: "us-east-1"),
                         credentials: Credentials(accessKeyId: "k", secretAccessKey: "s"))
    }

    public static func temporaryDirectory(_ name: String) throws -> String {
        let d = NSTemporaryDirectory() + "soak-\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
}
