/// Wraps any `ObjectStore` and fails its calls on a script (test support).
import Foundation
import S3

public final class FaultInjectingStore: ObjectStore, @unchecked Sendable {
    // @unchecked: `script` and `cuts` are guarded by `lock`.
    private let inner: ObjectStore
    private let lock = NSLock()
    private var script: [S3Error]
    /// GETs to cut short: each delivers `bytes` body bytes, then fails with `error`.
    private var cuts: [(bytes: Int64, error: S3Error)] = []

    /// Calls fail with `failures`, in order, before any goes through.
    public init(_ inner: ObjectStore, failures: [S3Error]) { self.inner = inner; self.script = failures }

    /// The next GET that gets through delivers `bytes` bytes of its body, then fails with
    /// `error` (a connection cut mid-body, for resumption).
    public func cutNextGet(after bytes: Int64, with error: S3Error) {
        lock.lock(); cuts.append((bytes, error)); lock.unlock()
    }

    /// Scripted failures not yet thrown.
    public var pending: Int { lock.lock(); defer { lock.unlock() }; return script.count }

    private func next() throws {
        lock.lock(); defer { lock.unlock() }
        if !script.isEmpty { throw script.removeFirst() }
    }

    public func listPage(bucket: String, prefix: String, delimiter: String?, continuationToken: String?,
                         maxKeys: Int) throws -> ListPage {
        try next()
        return try inner.listPage(bucket: bucket, prefix: prefix, delimiter: delimiter,
                                  continuationToken: continuationToken, maxKeys: maxKeys)
    }

    public func head(bucket: String, key: String) throws -> ObjectInfo {
        try next()
        return try inner.head(bucket: bucket, key: key)
    }

    public func get(bucket: String, key: String, range: ClosedRange<Int64>?, ifMatch: String?,
                    sink: (UnsafeRawBufferPointer) throws -> Void) throws -> GetResult {
        try next()
        lock.lock()
        let cut = cuts.isEmpty ? nil : cuts.removeFirst()
        lock.unlock()
        guard let cut else { return try inner.get(bucket: bucket, key: key, range: range, ifMatch: ifMatch, sink: sink) }
        var left = cut.bytes
        _ = try inner.get(bucket: bucket, key: key, range: range, ifMatch: ifMatch) { buf in
            guard left > 0 else { throw cut.error }
            let n = Int(min(Int64(buf.count), left))
            try sink(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            left -= Int64(n)
            if n < buf.count { throw cut.error }
        }
        throw cut.error
    }
}
