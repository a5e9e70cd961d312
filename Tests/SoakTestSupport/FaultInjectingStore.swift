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
    /// GETs whose body has the byte at this object offset flipped (a corrupt transfer).
    private var corruptions: [Int64] = []
    /// GETs of a key whose range starts at an offset fail, every time, with an error.
    private var refused: [String: [Int64: S3Error]] = [:]

    /// Calls fail with `failures`, in order, before any goes through.
    public init(_ inner: ObjectStore, failures: [S3Error]) { self.inner = inner; self.script = failures }

    /// The next GET that gets through delivers `bytes` bytes of its body, then fails with
    /// `error` (a connection cut mid-body, for resumption).
    public func cutNextGet(after bytes: Int64, with error: S3Error) {
        lock.lock(); cuts.append((bytes, error)); lock.unlock()
    }

    /// The next GET whose range holds object byte `offset` delivers it with its bits flipped,
    /// under the object's ETag (bytes corrupted in flight).
    public func corruptNextGet(at offset: Int64) {
        lock.lock(); corruptions.append(offset); lock.unlock()
    }

    /// Every GET of `key` whose range starts at `offset` fails with `error` (a part that cannot
    /// be fetched), until `allowGets`.
    public func refuseGets(key: String, from offset: Int64, with error: S3Error) {
        lock.lock(); refused[key, default: [:]][offset] = error; lock.unlock()
    }

    public func allowGets() { lock.lock(); refused.removeAll(); lock.unlock() }

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
        let from = range?.lowerBound ?? 0
        if let e = refused[key]?[from] { lock.unlock(); throw e }
        let cut = cuts.isEmpty ? nil : cuts.removeFirst()
        var flip: Int64?
        if let i = corruptions.firstIndex(where: { at in at >= from && (range?.contains(at) ?? true) }) {
            flip = corruptions.remove(at: i)
        }
        lock.unlock()
        return try withoutActuallyEscaping(sink) { sink in
            try get(bucket: bucket, key: key, range: range, ifMatch: ifMatch, flip: flip, cut: cut, sink: sink)
        }
    }

    private func get(bucket: String, key: String, range: ClosedRange<Int64>?, ifMatch: String?, flip: Int64?,
                     cut: (bytes: Int64, error: S3Error)?,
                     sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws -> GetResult {
        let from = range?.lowerBound ?? 0
        var delivered: Int64 = 0
        let deliver: (UnsafeRawBufferPointer) throws -> Void = { buf in
            defer { delivered += Int64(buf.count) }
            guard let f = flip, f - from >= delivered, f - from < delivered + Int64(buf.count) else { return try sink(buf) }
            var copy = Array(buf)
            copy[Int(f - from - delivered)] ^= 0xFF
            try copy.withUnsafeBytes { try sink($0) }
        }
        guard let cut else { return try inner.get(bucket: bucket, key: key, range: range, ifMatch: ifMatch, sink: deliver) }
        var left = cut.bytes
        _ = try inner.get(bucket: bucket, key: key, range: range, ifMatch: ifMatch) { buf in
            guard left > 0 else { throw cut.error }
            let n = Int(min(Int64(buf.count), left))
            try deliver(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            left -= Int64(n)
            if n < buf.count { throw cut.error }
        }
        throw cut.error
    }
}
