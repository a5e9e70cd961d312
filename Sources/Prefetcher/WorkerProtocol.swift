/// The coordinator ↔ worker wire protocol: one JSON object per line over the worker's
/// stdin (orders) and stdout (reports). stderr is the worker's log, passed through.
///
/// Credentials travel only in the `configure` message over the pipe, never in argv or the
/// environment of the child, so `ps` does not show them.
import Foundation
import S3
import SoakCore

/// Everything a worker needs to sign and send requests.
public struct WorkerConfig: Codable, Sendable {
    public var builder: S3RequestBuilder
    public var transport: TransportOptions
    /// Concurrent transfers on the worker's multi handle.
    public var slots: Int
    public var logLevel: String
    public init(builder: S3RequestBuilder, transport: TransportOptions, slots: Int, logLevel: String) {
        self.builder = builder; self.transport = transport; self.slots = slots; self.logLevel = logLevel
    }
}

/// One byte range of one object, to be written at `fileOffset` of `path`.
public struct FetchOrder: Codable, Sendable, Equatable {
    public var id: Int
    public var bucket: String
    public var key: String
    /// Sent as If-Match so bytes of two object versions never mix.
    public var etag: String?
    /// First and last byte (inclusive) of the object to fetch.
    public var start: Int64
    public var end: Int64
    public var path: String
    public var fileOffset: Int64
    public init(id: Int, bucket: String, key: String, etag: String?, start: Int64, end: Int64, path: String,
                fileOffset: Int64) {
        self.id = id; self.bucket = bucket; self.key = key; self.etag = etag
        self.start = start; self.end = end; self.path = path; self.fileOffset = fileOffset
    }
    public var length: Int64 { end - start + 1 }
}

/// How a fetch ended. `bytes` counts bytes written contiguously from `start`.
public struct FetchReport: Codable, Sendable, Equatable {
    public var id: Int
    public var bytes: Int64
    public var error: S3Error?
    /// Seconds from request start to first body byte, when a body arrived.
    public var firstByteLatency: Double?
    public init(id: Int, bytes: Int64, error: S3Error?, firstByteLatency: Double?) {
        self.id = id; self.bytes = bytes; self.error = error; self.firstByteLatency = firstByteLatency
    }
}

public enum ToWorker: Codable, Sendable, Equatable {
    case configure(WorkerConfig)
    case fetch(FetchOrder)
    case cancel(id: Int)
    /// This worker's share of MAX_SPEED in bytes/s, paced over all its transfers (nil = none).
    case rate(bytesPerSecond: Int64?)
    case shutdown

    public static func == (a: ToWorker, b: ToWorker) -> Bool {
        switch (a, b) {
        case (.fetch(let x), .fetch(let y)): return x == y
        case (.cancel(let x), .cancel(let y)): return x == y
        case (.rate(let x), .rate(let y)): return x == y
        case (.shutdown, .shutdown): return true
        case (.configure, .configure): return true
        default: return false
        }
    }
}

public enum FromWorker: Codable, Sendable, Equatable {
    case ready(pid: Int32)
    /// Bytes written so far per in-flight order; also the worker's heartbeat.
    case progress([Int: Int64])
    case done(FetchReport)
}

/// Newline-delimited JSON framing over a file descriptor.
public enum LineCodec {
    public static func encode<T: Encodable>(_ v: T) throws -> [UInt8] {
        var bytes = [UInt8](try JSONEncoder().encode(v))
        bytes.append(0x0A)
        return bytes
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ line: ArraySlice<UInt8>) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(line))
    }
}

/// Accumulates bytes read from a pipe and yields complete lines.
public struct LineBuffer: Sendable {
    private var buf: [UInt8] = []
    /// A line longer than this is a protocol error (a worker gone mad), not something to buffer.
    public static let maxLine = 16 * 1024 * 1024
    public init() {}
    public mutating func append(_ bytes: UnsafeRawBufferPointer) { buf.append(contentsOf: bytes) }
    public mutating func nextLine() -> ArraySlice<UInt8>? {
        guard let nl = buf.firstIndex(of: 0x0A) else { return nil }
        let line = buf[..<nl]
        let out = ArraySlice(Array(line))
        buf.removeSubrange(...nl)
        return out
    }
    public var pending: Int { buf.count }
}

/// Blocking full write to a file descriptor (retries EINTR and short writes).
public func writeAll(fd: Int32, _ bytes: [UInt8]) throws {
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { p in write(fd, p.baseAddress! + off, bytes.count - off) }
        if n < 0 {
            if errno == EINTR { continue }
            throw LocalIOError(errno: errno, operation: "write", path: "pipe fd \(fd)")
        }
        off += n
    }
}
