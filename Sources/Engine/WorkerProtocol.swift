/// The coordinator ↔ worker wire protocol: one JSON object per line over the worker's
/// stdin (orders) and stdout (reports). stderr is the worker's log, passed through.
///
/// Credentials travel only over the pipe, never in argv or the environment of the child (see
/// `WorkerEnvironment`), so neither `ps` nor /proc/PID/environ shows them: in the `configure`
/// message, and fresh ones in a `credentials` message that a live worker applies to the
/// requests it signs from then on.
import CSys
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
    /// `--log-file`: workers append their log lines there too (nil: stderr).
    public var logFile: String? = nil
    public init(builder: S3RequestBuilder, transport: TransportOptions, slots: Int, logLevel: String) {
        self.builder = builder; self.transport = transport; self.slots = slots; self.logLevel = logLevel
    }
}

/// Where a whole-object fetch is published when it completes: the worker writes into an
/// unnamed file (O_TMPFILE) in the final directory, stamps it and links it in under its name.
/// Nothing half-written ever has a name, and a crash leaves nothing behind. On a filesystem
/// without O_TMPFILE the order's `path` (a name in `DEST/.soak-partial/`) is written instead and
/// renamed into place; a crash may leave it there, and the next run removes it. `finalPath`
/// is relative to the order's `root`.
public struct PublishSpec: Codable, Sendable, Equatable {
    /// The xattr holding the ETag a finished file was downloaded at.
    public static let etagXattr = "user.soak.etag"
    public var finalPath: String
    public var etag: String
    /// Seconds since 1970 to set as mtime (the object's LastModified).
    public var mtime: Double?
    public init(finalPath: String, etag: String, mtime: Double?) {
        self.finalPath = finalPath; self.etag = etag; self.mtime = mtime
    }

    /// Marks a complete file: the ETag xattr that later runs compare, and the object's mtime.
    /// The one place both completion paths (worker publish, split-object finalize) stamp files.
    public static func stamp(fd: Int32, etag: String, mtime: Double?) {
        _ = etag.withCString { csys_fsetxattr(fd, etagXattr, $0, strlen($0)) }
        stampMtime(fd: fd, mtime: mtime)
    }

    /// Sets the object's mtime. Again after a rename into place: some filesystems (fusefat)
    /// give a renamed file the time of the rename, and without xattrs the mtime is what tells
    /// a later run the file is complete.
    public static func stampMtime(fd: Int32, mtime: Double?) {
        if let m = mtime {
            let ts = timespec(tv_sec: Int(m), tv_nsec: Int((m - m.rounded(.down)) * 1e9))
            var times = [ts, ts]
            _ = futimens(fd, &times)
        }
    }
}

/// One byte range of one object, to be written at `fileOffset` of `path` (or, with `publish`,
/// of an unnamed file linked in at `publish.finalPath` when complete).
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
    public var publish: PublishSpec?
    /// Downloads: DEST. `path` and `publish.finalPath` are then relative to it and resolved
    /// beneath it (`DestinationRoot`: no symbolic link followed out of it, written through or
    /// replaced). nil: `path` is absolute (cache fills).
    public var root: String?
    /// Cache fills: the worker reports a CRC32C per block of this size (blocks counted from
    /// `start`, which is block-aligned), and a retry resumes at a block boundary.
    public var blockSize: Int64?
    /// The worker starts higher lanes first and gives them slots beyond its bulk limit.
    public var lane: Lane
    /// Write with O_DIRECT through 1 MiB aligned buffers, bypassing the page cache (see `DirectIO`).
    public var direct: Bool
    /// Earlier attempts of this order abandoned as stalled: each doubles the silence its next
    /// attempt is allowed (`StallBounds`), so a slow server is not cut at the same point forever.
    public var stalls = 0
    public init(id: Int, bucket: String, key: String, etag: String?, start: Int64, end: Int64, path: String,
                fileOffset: Int64, publish: PublishSpec? = nil, blockSize: Int64? = nil, lane: Lane = .bulk,
                direct: Bool = false) {
        self.id = id; self.bucket = bucket; self.key = key; self.etag = etag
        self.start = start; self.end = end; self.path = path; self.fileOffset = fileOffset; self.publish = publish
        self.blockSize = blockSize; self.lane = lane; self.direct = direct
    }
    /// Bytes of an unnamed file do not survive the order, so a retry starts over.
    public var isResumable: Bool { publish == nil }
    public var length: Int64 { end - start + 1 }
    /// Block orders: the range cut into its blocks, counted from `start`.
    public var blocks: BlockRanges? { blockSize.map { BlockRanges(size: length, blockSize: $0) } }
}

/// How a fetch ended. `bytes` counts bytes written contiguously from `start`.
public struct FetchReport: Codable, Sendable, Equatable {
    public var id: Int
    public var bytes: Int64
    public var error: S3Error?
    /// Seconds from request start to first body byte, when a body arrived.
    public var firstByteLatency: Double?
    /// With `blockSize`: CRC32C of each block written completely, in order from `start`.
    public var crcs: [UInt32]
    public init(id: Int, bytes: Int64, error: S3Error?, firstByteLatency: Double?, crcs: [UInt32] = []) {
        self.id = id; self.bytes = bytes; self.error = error; self.firstByteLatency = firstByteLatency
        self.crcs = crcs
    }
}

public enum ToWorker: Codable, Sendable, Equatable {
    case configure(WorkerConfig)
    case fetch(FetchOrder)
    /// This worker's share of MAX_SPEED in bytes/s, paced over all its transfers (nil = none).
    case rate(bytesPerSecond: Int64?)
    /// An order the worker holds but has not started moved to a higher lane.
    case promote(id: Int, lane: Lane)
    /// Sign requests started from now on with these (refreshed credentials); transfers under
    /// way keep the signature they were sent with.
    case credentials(Credentials)
    case shutdown

    public static func == (a: ToWorker, b: ToWorker) -> Bool {
        switch (a, b) {
        case (.fetch(let x), .fetch(let y)): return x == y
        case (.rate(let x), .rate(let y)): return x == y
        case (.promote(let i, let l), .promote(let j, let m)): return i == j && l == m
        case (.credentials(let x), .credentials(let y)): return x == y
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
    /// Block orders: blocks `first…` (counted from the order's start) are written, with their
    /// CRC32Cs, before the order is done, so a reader waiting on one need not wait for the rest.
    case landed(id: Int, first: Int, crcs: [UInt32])
    case done(FetchReport)
}

/// Line framing over a file descriptor. The hot messages (`fetch`, `done`, `progress`, one
/// or more per object) use a compact tab-separated form with `%`-escaped strings, far cheaper
/// than Foundation's JSON coders (docs/BENCHMARKS.md, hash kernels and encodings); the rare
/// ones are JSON prefixed with `J`.
public enum LineCodec {
    public static func encode(_ m: ToWorker) throws -> [UInt8] {
        guard case .fetch(let o) = m else { return try json(m) }
        var f = ["F", String(o.id), String(o.start), String(o.end), String(o.fileOffset),
                 esc(o.bucket), esc(o.key), opt(o.etag), esc(o.path)]
        if let p = o.publish {
            f += ["+" + esc(p.finalPath), esc(p.etag), p.mtime.map { String($0) } ?? "-"]
        } else {
            f += ["-"]
        }
        f += [o.blockSize.map { String($0) } ?? "-", String(o.lane.rawValue), o.direct ? "d" : "-", opt(o.root)]
        if o.stalls > 0 { f.append(String(o.stalls)) }
        return line(f)
    }

    public static func encode(_ m: FromWorker) throws -> [UInt8] {
        switch m {
        case .done(let r):
            let err = try r.error.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
            return line(["D", String(r.id), String(r.bytes), r.firstByteLatency.map { String($0) } ?? "-",
                         err.map(esc) ?? "-", r.crcs.isEmpty ? "-" : crcList(r.crcs)])
        case .progress(let p):
            return line(["P"] + p.map { "\($0.key):\($0.value)" })
        case .landed(let id, let first, let crcs):
            return line(["L", String(id), String(first), crcList(crcs)])
        default:
            return try json(m)
        }
    }

    public static func decode(_ type: ToWorker.Type, _ line: ArraySlice<UInt8>) throws -> ToWorker {
        guard line.first == UInt8(ascii: "F") else { return try fromJSON(type, line) }
        let f = fields(line)
        guard f.count >= 10, let id = Int(f[1]), let start = Int64(f[2]), let end = Int64(f[3]),
              let off = Int64(f[4]) else { throw bad(line) }
        var o = FetchOrder(id: id, bucket: unesc(f[5]), key: unesc(f[6]), etag: unopt(f[7]), start: start,
                           end: end, path: unesc(f[8]), fileOffset: off)
        var k = 10
        if f[9].hasPrefix("+") {
            guard f.count >= 12 else { throw bad(line) }
            o.publish = PublishSpec(finalPath: unesc(String(f[9].dropFirst())), etag: unesc(f[10]),
                                    mtime: Double(f[11]))
            k = 12
        }
        if f.count >= k + 2 {
            if f[k] != "-" {
                guard let bs = Int64(f[k]), bs > 0 else { throw bad(line) }
                o.blockSize = bs
            }
            guard let l = Int(f[k + 1]).flatMap(Lane.init(rawValue:)) else { throw bad(line) }
            o.lane = l
        }
        if f.count >= k + 3 { o.direct = f[k + 2] == "d" }
        if f.count >= k + 4 { o.root = unopt(f[k + 3]) }
        if f.count >= k + 5 {
            guard let n = Int(f[k + 4]), n >= 0 else { throw bad(line) }
            o.stalls = n
        }
        return .fetch(o)
    }

    public static func decode(_ type: FromWorker.Type, _ line: ArraySlice<UInt8>) throws -> FromWorker {
        switch line.first {
        case UInt8(ascii: "D"):
            let f = fields(line)
            guard f.count >= 5, let id = Int(f[1]), let bytes = Int64(f[2]) else { throw bad(line) }
            let err = f[4] == "-" ? nil : try JSONDecoder().decode(S3Error.self, from: Data(unesc(f[4]).utf8))
            var r = FetchReport(id: id, bytes: bytes, error: err, firstByteLatency: Double(f[3]))
            if f.count >= 6, f[5] != "-" { r.crcs = try crcs(f[5], line) }
            return .done(r)
        case UInt8(ascii: "L"):
            let f = fields(line)
            guard f.count == 4, let id = Int(f[1]), let first = Int(f[2]), first >= 0 else { throw bad(line) }
            return .landed(id: id, first: first, crcs: try crcs(f[3], line))
        case UInt8(ascii: "P"):
            var p: [Int: Int64] = [:]
            for item in fields(line).dropFirst() {
                guard let c = item.firstIndex(of: ":"), let id = Int(item[..<c]),
                      let b = Int64(item[item.index(after: c)...]) else { throw bad(line) }
                p[id] = b
            }
            return .progress(p)
        default:
            return try fromJSON(type, line)
        }
    }

    private static func json<T: Encodable>(_ v: T) throws -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "J")]
        bytes += try JSONEncoder().encode(v)
        bytes.append(0x0A)
        return bytes
    }

    private static func fromJSON<T: Decodable>(_ type: T.Type, _ line: ArraySlice<UInt8>) throws -> T {
        guard line.first == UInt8(ascii: "J") else { throw bad(line) }
        return try JSONDecoder().decode(T.self, from: Data(line.dropFirst()))
    }

    private static func line(_ fields: [String]) -> [UInt8] {
        var out = [UInt8]()
        for (i, f) in fields.enumerated() {
            if i > 0 { out.append(0x09) }
            out += f.utf8
        }
        out.append(0x0A)
        return out
    }

    /// Block CRCs as one field: lowercase hex, comma-separated (`done` and `landed`).
    private static func crcList(_ crcs: [UInt32]) -> String {
        crcs.map { String($0, radix: 16) }.joined(separator: ",")
    }

    private static func crcs(_ field: String, _ line: ArraySlice<UInt8>) throws -> [UInt32] {
        try field.split(separator: ",").map {
            guard let v = UInt32($0, radix: 16) else { throw bad(line) }
            return v
        }
    }

    private static func fields(_ line: ArraySlice<UInt8>) -> [String] {
        line.split(separator: 0x09, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Escapes the three bytes that would break a field: `%`, tab, newline (and CR).
    static func esc(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x25 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else { return s }
        var out = [UInt8]()
        for b in s.utf8 {
            switch b {
            case 0x25: out += Array("%25".utf8)
            case 0x09: out += Array("%09".utf8)
            case 0x0A: out += Array("%0A".utf8)
            case 0x0D: out += Array("%0D".utf8)
            default: out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func unesc(_ s: String) -> String {
        guard s.utf8.contains(0x25) else { return s }
        var out = [UInt8](), it = Array(s.utf8), i = 0
        while i < it.count {
            if it[i] == 0x25, i + 2 < it.count, let v = UInt8(String(decoding: it[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(v); i += 3
            } else {
                out.append(it[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func opt(_ s: String?) -> String { s.map { "+" + esc($0) } ?? "-" }
    private static func unopt(_ s: String) -> String? { s.hasPrefix("+") ? unesc(String(s.dropFirst())) : nil }
    private static func bad(_ line: ArraySlice<UInt8>) -> Error {
        LocalIOError(errno: EPROTO, operation: "decode worker message", path: String(decoding: line.prefix(80), as: UTF8.self))
    }


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
    /// A whole line is waiting (`nextLine` would return one).
    public var hasLine: Bool { buf.contains(0x0A) }
}
