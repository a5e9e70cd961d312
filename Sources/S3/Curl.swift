/// The one file that touches libcurl.
///
/// `CurlTransfer` owns an easy handle configured for one HTTP request: it parses the status
/// line and the headers soak needs (ETag, Content-Range, Content-Length, Retry-After) as they
/// arrive, hands 2xx body bytes to a sink and keeps at most `errorBodyLimit` bytes of an error
/// body for its XML. `CurlMulti` drives many transfers on one thread with `curl_multi_poll`,
/// which can also wake on extra file descriptors (a worker's command pipe). No variadic C call
/// is made from Swift: the shim header wraps `curl_easy_setopt` and friends per argument type.
import CCurl
import Foundation
import SoakCore

/// Process-wide libcurl initialisation (must happen before any thread uses libcurl).
public enum CurlGlobal {
    private static let once: Bool = { curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK }()
    /// Call once early in `main` of every process that uses libcurl.
    @discardableResult public static func initialize() -> Bool { once }
    public static var version: String { String(cString: curl_version()) }
}

/// Transport settings shared by every request of a process.
public struct TransportOptions: Sendable, Codable, Equatable {
    /// Verify the server's TLS certificate (S3_VERIFY_SSL=false turns it off).
    public var verifyTLS: Bool = true
    /// CA bundle file (AWS_CA_BUNDLE), if set.
    public var caBundle: String? = nil
    /// Seconds to establish a connection before the attempt fails (and is retried).
    public var connectTimeout: Int = 10
    /// A transfer slower than `lowSpeedLimit` bytes/s for `lowSpeedTime` seconds is a stall.
    /// The limit of the coordinator's own requests (listings, HEAD); a worker's transfers are
    /// watched by its adaptive stall bounds and keep this only as a far backstop.
    public var lowSpeedLimit: Int = 1024
    public var lowSpeedTime: Int = 20
    /// The coordinator's proxy variables (`ProxySettings`); nil leaves libcurl to read the environment.
    public var proxy: ProxySettings? = nil
    public init() {}
}

/// Response metadata parsed from the header stream.
public struct ResponseHead: Sendable, Equatable {
    public var status: Int = 0
    public var etag: String?
    public var contentLength: Int64?
    /// `Content-Range: bytes a-b/total` → (a, b, total).
    public var contentRange: (start: Int64, end: Int64, total: Int64?)?
    public var retryAfter: Double?
    /// `x-amz-bucket-region`: where the bucket lives (AWS sends it on HEAD bucket and redirects).
    public var bucketRegion: String?
    /// `Date`: the server's clock, as sent (an HTTP date); `soak doctor` reports the skew.
    public var date: String?
    public init() {}

    public static func == (l: ResponseHead, r: ResponseHead) -> Bool {
        l.status == r.status && l.etag == r.etag && l.contentLength == r.contentLength
            && l.contentRange?.start == r.contentRange?.start && l.contentRange?.end == r.contentRange?.end
            && l.contentRange?.total == r.contentRange?.total && l.retryAfter == r.retryAfter
    }

    /// Parses `bytes a-b/total` (total may be `*`). Returns nil for anything else.
    public static func parseContentRange(_ v: String) -> (start: Int64, end: Int64, total: Int64?)? {
        let s = v.trimmingASCIIWhitespace()
        guard s.hasPrefix("bytes ") else { return nil }
        let rest = s.dropFirst(6)
        guard let slash = rest.firstIndex(of: "/"), let dash = rest[..<slash].firstIndex(of: "-") else { return nil }
        guard let a = Int64(rest[..<dash]), let b = Int64(rest[rest.index(after: dash)..<slash]),
              a >= 0, b >= a else { return nil }
        let totalStr = rest[rest.index(after: slash)...]
        if totalStr == "*" { return (a, b, nil) }
        guard let t = Int64(totalStr), t > b else { return nil }
        return (a, b, t)
    }

    /// Retry-After is seconds or an HTTP date; we honour the seconds form and cap dates at 0.
    static func parseRetryAfter(_ v: String) -> Double? {
        if let n = Double(v.trimmingASCIIWhitespace()), n >= 0 { return n }
        return nil
    }

    mutating func consume(headerLine raw: String) {
        var bytes = Array(raw.utf8)
        bytes.withUnsafeMutableBytes { consume(headerBytes: UnsafeRawBufferPointer($0)) }
    }

    /// Parses one raw header line. Runs for every header of every response, so it works on bytes
    /// and only builds Strings for the few headers soak reads.
    mutating func consume(headerBytes line: UnsafeRawBufferPointer) {
        var lo = 0, hi = line.count
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A }
        while lo < hi && isSpace(line[lo]) { lo += 1 }
        while hi > lo && isSpace(line[hi - 1]) { hi -= 1 }
        guard hi > lo else { return }
        func hasPrefix(_ p: StaticString) -> Bool {
            let n = p.utf8CodeUnitCount
            guard hi - lo >= n else { return false }
            for i in 0..<n where line[lo + i] | 0x20 != p.utf8Start[i] | 0x20 { return false }
            return true
        }
        func value(after n: Int) -> String {
            var a = lo + n
            while a < hi && isSpace(line[a]) { a += 1 }
            return String(decoding: UnsafeRawBufferPointer(rebasing: line[a..<hi]), as: UTF8.self)
        }
        if hasPrefix("HTTP/") {
            // A new status line (after 100-continue or a redirect) starts a fresh head.
            self = ResponseHead()
            var i = lo
            while i < hi && line[i] != 0x20 { i += 1 }
            while i < hi && line[i] == 0x20 { i += 1 }
            var code = 0, digits = 0
            while i < hi, line[i] >= 0x30, line[i] <= 0x39, digits < 3 {
                code = code * 10 + Int(line[i] - 0x30); i += 1; digits += 1
            }
            if digits == 3 { status = code }
        } else if hasPrefix("etag:") {
            etag = ETag.normalize(value(after: 5))
        } else if hasPrefix("content-length:") {
            contentLength = Int64(value(after: 15)).flatMap { $0 >= 0 ? $0 : nil }
        } else if hasPrefix("content-range:") {
            contentRange = Self.parseContentRange(value(after: 14))
        } else if hasPrefix("retry-after:") {
            retryAfter = Self.parseRetryAfter(value(after: 12))
        } else if hasPrefix("x-amz-bucket-region:") {
            let v = value(after: 20)
            bucketRegion = v.isEmpty ? nil : v
        } else if hasPrefix("date:") {
            date = value(after: 5)
        }
    }
}

/// ETags are compared without quotes and without a weak prefix.
public enum ETag {
    public static func normalize(_ raw: String) -> String {
        var s = Substring(raw.trimmingASCIIWhitespace())
        if s.hasPrefix("W/") { s = s.dropFirst(2) }
        if s.hasPrefix("\""), s.hasSuffix("\""), s.count >= 2 { s = s.dropFirst().dropLast() }
        if s.hasPrefix("&#34;") , s.hasSuffix("&#34;"), s.count >= 10 { s = s.dropFirst(5).dropLast(5) }
        if s.hasPrefix("&quot;"), s.hasSuffix("&quot;"), s.count >= 12 { s = s.dropFirst(6).dropLast(6) }
        return String(s)
    }
}

/// A libcurl error code with its message.
public struct CurlError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let what: String
    public var description: String { "\(what): \(String(cString: curl_easy_strerror(CURLcode(UInt32(code)))))" }
}

/// One HTTP request on its own easy handle. Not thread-safe: one thread drives it.
public final class CurlTransfer {
    /// Bytes of a non-2xx body kept for the S3 error XML.
    static let errorBodyLimit = 64 * 1024
    /// Receive buffer: large buffers cut syscalls and callbacks per GB (libcurl's max is 10 MiB).
    static let receiveBufferSize = 512 * 1024

    public let handle: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>?
    public private(set) var head = ResponseHead()
    public private(set) var errorBody = [UInt8]()
    /// Body bytes handed to the sink so far.
    public private(set) var bodyBytes: Int64 = 0
    /// Bytes of the response taken so far, head and body (a paused chunk counts once taken):
    /// a stall detector's sign of life.
    public private(set) var receivedBytes: Int64 = 0
    /// Set when the sink refused bytes (e.g. pwrite failed); the transfer then aborts.
    public var sinkError: Error?
    /// Called with each chunk of a 2xx body. Throwing aborts the transfer.
    public var sink: (UnsafeRawBufferPointer) throws -> Void = { _ in }
    /// Opaque tag for the owner (a worker's job id).
    public var tag: Int = 0
    /// Monotonic time the first body byte arrived (for latency sampling).
    public private(set) var firstByteAt: Double?
    /// Asked before each body chunk is accepted; false pauses the transfer (libcurl keeps the
    /// chunk and delivers it again after `resume()`). This is how a rate limit holds bytes back.
    public var admit: ((Int) -> Bool)?
    /// True while the transfer is paused by `admit`.
    public private(set) var paused = false
    /// The byte range asked for (set after `prepare`): the response head is checked against it
    /// before any body byte reaches the sink, so a wrong Content-Range never puts bytes at the
    /// wrong offsets. A mismatch aborts the transfer with `headProblem` set.
    public var expectedRange: ClosedRange<Int64>?
    /// Why the response head did not match `expectedRange`.
    public private(set) var headProblem: String?
    private var headChecked = false

    public init() throws {
        CurlGlobal.initialize()
        guard let h = curl_easy_init() else { throw CurlError(code: -1, what: "curl_easy_init") }
        handle = h
    }

    deinit {
        curl_easy_cleanup(handle)
        if let headerList { curl_slist_free_all(headerList) }
    }

    /// Configures the handle for one request. Safe to call again to reuse the connection.
    public func prepare(method: String, url: String, headers: [(name: String, value: String)],
                        options: TransportOptions) throws {
        curl_easy_reset(handle)
        head = ResponseHead(); errorBody.removeAll(keepingCapacity: true); bodyBytes = 0; receivedBytes = 0
        sinkError = nil; firstByteAt = nil; paused = false; admit = nil
        expectedRange = nil; headProblem = nil; headChecked = false
        if let headerList { curl_slist_free_all(headerList); self.headerList = nil }
        for h in headers {
            // Host is implied by the URL; passing it again would duplicate it.
            if h.name.lowercased() == "host" { continue }
            headerList = curl_slist_append(headerList, "\(h.name): \(h.value)")
        }
        // Suppress libcurl's own "Accept: */*" and "Expect" for cleanliness.
        headerList = curl_slist_append(headerList, "Accept:")
        try set(CURLOPT_URL, url)
        try set(CURLOPT_HTTPHEADER, headerList)
        try set(CURLOPT_NOSIGNAL, 1)
        try set(CURLOPT_FOLLOWLOCATION, 0)
        try set(CURLOPT_TCP_NODELAY, 1)
        // Keys may contain `.`/`..` segments: send the path exactly as signed.
        try set(CURLOPT_PATH_AS_IS, 1)
        try set(CURLOPT_BUFFERSIZE, Self.receiveBufferSize)
        try set(CURLOPT_CONNECTTIMEOUT, options.connectTimeout)
        try set(CURLOPT_LOW_SPEED_LIMIT, options.lowSpeedLimit)
        try set(CURLOPT_LOW_SPEED_TIME, options.lowSpeedTime)
        try set(CURLOPT_SSL_VERIFYPEER, options.verifyTLS ? 1 : 0)
        try set(CURLOPT_SSL_VERIFYHOST, options.verifyTLS ? 2 : 0)
        if let ca = options.caBundle { try set(CURLOPT_CAINFO, ca) }
        if let p = options.proxy {
            // Explicit, so a worker whose environment has no proxy variables still uses them.
            try set(CURLOPT_PROXY, p.proxy(for: url) ?? "")
            try set(CURLOPT_NOPROXY, p.noProxy ?? "")
        }
        switch method {
        case "GET": break
        case "HEAD": try set(CURLOPT_NOBODY, 1)
        default: try set(CURLOPT_CUSTOMREQUEST, method)
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        try check(ccurl_easy_setopt_datacb(handle, CURLOPT_WRITEFUNCTION, curlWriteCallback), "WRITEFUNCTION")
        try check(ccurl_easy_setopt_ptr(handle, CURLOPT_WRITEDATA, me), "WRITEDATA")
        try check(ccurl_easy_setopt_datacb(handle, CURLOPT_HEADERFUNCTION, curlHeaderCallback), "HEADERFUNCTION")
        try check(ccurl_easy_setopt_ptr(handle, CURLOPT_HEADERDATA, me), "HEADERDATA")
    }

    /// Runs the request to completion on this thread; returns libcurl's result code.
    public func perform() -> Int32 {
        Int32(bitPattern: curl_easy_perform(handle).rawValue)
    }

    /// HTTP status as libcurl saw it (0 when no response).
    public var responseCode: Int {
        var code: Int = 0
        _ = ccurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        return code
    }

    public static func describe(code: Int32) -> String {
        String(cString: curl_easy_strerror(CURLcode(UInt32(bitPattern: code))))
    }

    fileprivate func onHeader(_ line: UnsafeRawBufferPointer) {
        receivedBytes += Int64(line.count)
        head.consume(headerBytes: line)
    }

    /// True once libcurl has connected and is sending (or has sent) the request: from then on
    /// a silence is the server's. Before, the transfer is connecting or waiting in libcurl.
    public var requestSent: Bool {
        var t: curl_off_t = 0
        _ = ccurl_easy_getinfo_off(handle, CURLINFO_PRETRANSFER_TIME_T, &t)
        return t > 0
    }

    /// Continues a transfer paused by `admit`. libcurl may deliver the held chunk from inside
    /// this call.
    public func resume() {
        guard paused else { return }
        paused = false
        _ = curl_easy_pause(handle, 0 /* CURLPAUSE_CONT */)
    }

    /// What the write callback returns: accepted, refused (abort) or paused.
    fileprivate enum BodyVerdict { case accepted, refused, paused }

    fileprivate func onBody(_ buf: UnsafeRawBufferPointer) -> BodyVerdict {
        if head.status >= 200 && head.status < 300 {
            if !headChecked {
                headChecked = true
                if let r = expectedRange, let p = ResponseCheck.rangeProblem(head, requested: r) {
                    headProblem = p
                    return .refused
                }
            }
            if let admit, !admit(buf.count) { paused = true; return .paused }
            receivedBytes += Int64(buf.count)
            if firstByteAt == nil { firstByteAt = MonotonicTime.now() }
            do { try sink(buf) } catch { sinkError = error; return .refused }
            bodyBytes += Int64(buf.count)
        } else {
            receivedBytes += Int64(buf.count)
            if errorBody.count < Self.errorBodyLimit {
                errorBody.append(contentsOf: buf.prefix(Self.errorBodyLimit - errorBody.count))
            }
        }
        return .accepted
    }

    private func set(_ o: CURLoption, _ v: Int) throws {
        try check(ccurl_easy_setopt_long(handle, o, v), "setopt \(o.rawValue)")
    }
    private func set(_ o: CURLoption, _ v: String) throws {
        // libcurl copies string options (since 7.17), so a temporary C string is fine.
        try check(v.withCString { ccurl_easy_setopt_str(handle, o, $0) }, "setopt \(o.rawValue)")
    }
    private func set(_ o: CURLoption, _ v: UnsafeMutablePointer<curl_slist>?) throws {
        try check(ccurl_easy_setopt_slist(handle, o, v), "setopt \(o.rawValue)")
    }
    private func check(_ rc: CURLcode, _ what: String) throws {
        if rc != CURLE_OK { throw CurlError(code: Int32(bitPattern: rc.rawValue), what: what) }
    }
}

private func curlWriteCallback(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ n: Int,
                               _ ud: UnsafeMutableRawPointer?) -> Int {
    guard let ud, let ptr else { return 0 }
    let t = Unmanaged<CurlTransfer>.fromOpaque(ud).takeUnretainedValue()
    let count = size * n
    switch t.onBody(UnsafeRawBufferPointer(start: ptr, count: count)) {
    case .accepted: return count
    case .refused: return 0
    case .paused: return ccurl_writefunc_pause()
    }
}

private func curlHeaderCallback(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ n: Int,
                                _ ud: UnsafeMutableRawPointer?) -> Int {
    guard let ud, let ptr else { return 0 }
    let t = Unmanaged<CurlTransfer>.fromOpaque(ud).takeUnretainedValue()
    let count = size * n
    t.onHeader(UnsafeRawBufferPointer(start: ptr, count: count))
    return count
}

/// Many transfers on one thread. A multi handle belongs to the thread that created it.
public final class CurlMulti {
    public let handle: UnsafeMutableRawPointer
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]

    public init(maxConnections: Int) throws {
        CurlGlobal.initialize()
        guard let m = curl_multi_init() else { throw CurlError(code: -1, what: "curl_multi_init") }
        handle = m
        _ = ccurl_multi_setopt_long(m, CURLMOPT_MAXCONNECTS, maxConnections)
    }

    deinit {
        for (h, _) in active { curl_multi_remove_handle(handle, h) }
        curl_multi_cleanup(handle)
    }

    public var count: Int { active.count }

    public func add(_ t: CurlTransfer) throws {
        let rc = curl_multi_add_handle(handle, t.handle)
        guard rc == CURLM_OK else { throw CurlError(code: Int32(rc.rawValue), what: "curl_multi_add_handle") }
        active[t.handle] = t
    }

    public func remove(_ t: CurlTransfer) {
        if active.removeValue(forKey: t.handle) != nil { curl_multi_remove_handle(handle, t.handle) }
    }

    /// Waits up to `timeoutMs` for socket activity or for `extraFD` to become readable.
    /// Returns true when `extraFD` is readable.
    public func poll(timeoutMs: Int, extraFD: Int32?) -> Bool {
        var ready: Int32 = 0
        if let fd = extraFD {
            var w = curl_waitfd(fd: fd, events: Int16(CURL_WAIT_POLLIN), revents: 0)
            _ = curl_multi_poll(handle, &w, 1, Int32(timeoutMs), &ready)
            return w.revents != 0
        }
        _ = curl_multi_poll(handle, nil, 0, Int32(timeoutMs), &ready)
        return false
    }

    /// Ends a `poll` under way (or the next one) at once; any thread may call it.
    public func wakeup() {
        _ = curl_multi_wakeup(handle)
    }

    /// Drives transfers; returns those that finished with libcurl's result code.
    public func perform() -> [(CurlTransfer, Int32)] {
        var running: Int32 = 0
        _ = curl_multi_perform(handle, &running)
        var done: [(CurlTransfer, Int32)] = []
        var left: Int32 = 0
        while let msg = curl_multi_info_read(handle, &left) {
            guard ccurl_msg_is_done(msg) != 0, let h = ccurl_msg_handle(msg), let t = active[h] else { continue }
            done.append((t, Int32(bitPattern: ccurl_msg_result(msg).rawValue)))
            remove(t)
        }
        return done
    }
}

// MARK: - Small blocking requests (credential sources)

extension CurlTransfer {
    /// Sends `body` as the request body (after `prepare`; libcurl copies it).
    public func setRequestBody(_ body: [UInt8]) throws {
        try set(CURLOPT_POSTFIELDSIZE, body.count)
        var copy = body
        try copy.withUnsafeMutableBytes { buf in
            try check(ccurl_easy_setopt_ptr(handle, CURLOPT_COPYPOSTFIELDS, buf.baseAddress), "COPYPOSTFIELDS")
        }
    }

    /// Fails the whole transfer, connection included, after `milliseconds` (after `prepare`).
    public func setTimeout(milliseconds: Int) throws {
        try set(CURLOPT_TIMEOUT_MS, milliseconds)
        try set(CURLOPT_CONNECTTIMEOUT_MS, milliseconds)
    }
}
