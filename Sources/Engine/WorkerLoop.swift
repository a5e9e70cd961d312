/// The worker process's event loop: orders in, transfers on one libcurl multi handle, reports out
/// (see `Worker`). Its transfers are `WorkerLoop.Active`; writing their bodies is in
/// WorkerLoop+Writes.swift.
import CSys
import Foundation
import Logging
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

/// State of the worker's event loop (single-threaded).
final class WorkerLoop {
    /// Its builder's credentials change with a `credentials` message.
    var config: WorkerConfig
    let logger: Logger
    let multi: CurlMulti
    var transport: TransportOptions
    /// Paces body bytes when the coordinator set a rate (MAX_SPEED share); may run into debt
    /// by one chunk, so the long-run rate is exact and bursts are bounded by a chunk.
    var bucket: TokenBucket?
    var waiting: [FetchOrder] = []
    var active: [Int: Active] = [:]
    var idle: [CurlTransfer] = []
    var lastHeartbeat = 0.0
    var stopping = false
    /// Transfers taken out of `active` whose background writes are being waited for.
    var finishing: [Int: Active] = [:]

    /// When a silent transfer is abandoned, learned from this worker's completed transfers.
    var stallBounds = StallBounds()
    /// Seconds the loop has spent on its own work, when no transfer could receive (`ownWork`).
    var ownTime = 0.0
    /// libcurl's low-speed limit on transfers, kept as a far backstop behind the stall bounds
    /// (past their cap), e.g. for a trickle that is never quite silent.
    static let lowSpeedBackstop = 2 * Int(StallBounds.cap)


    /// O_DIRECT staging buffer per transfer: 1 MiB writes are large enough to cost little per
    /// byte; 16 transfers add 16 MiB to a worker.
    static let directStagingSize = 1 << 20
    /// Full O_DIRECT buffers waiting for the writer thread: 8 MiB lets the disk fall behind for a
    /// moment without holding much memory (docs/BENCHMARKS.md, write path).
    static let maxQueuedDirectWrites = 8
    /// Page-cache staging buffer per transfer. libcurl hands the body over in 16 KiB pieces;
    /// ext4 takes 256 KiB aligned writes for much less kernel CPU than 16 KiB ones
    /// (docs/BENCHMARKS.md, write path), and a 1 MiB block ends on a buffer boundary.
    static let bufferedStagingSize = 256 << 10
    static func stagingSize(direct: Bool) -> Int { direct ? directStagingSize : bufferedStagingSize }
    /// fallocate each range before writing it (docs/BENCHMARKS.md, write path).
    static let preallocate = ProcessInfo.processInfo.environment["SOAK_PREALLOCATE"] != "0"
    /// Staging buffers of finished transfers by size, reused (no mmap and page faults per transfer).
    var spareStaging: [Int: [UnsafeMutableRawBufferPointer]] = [:]
    /// Writes O_DIRECT buffers off the loop's thread; started by the first direct order.
    var writer: DirectWriter?
    /// O_DIRECT needs offsets, lengths and buffers aligned to the logical block size.
    static let directAlignment = 4096
    /// Transfers beyond `slots` that urgent and read-ahead orders may use, so a mount read
    /// starts at once even when bulk work fills every slot.
    static let priorityExtraSlots = 8

    func limit(for lane: Lane) -> Int { lane == .bulk ? config.slots : config.slots + Self.priorityExtraSlots }

    /// Keeps `waiting` ordered by lane, FIFO within a lane.
    func enqueue(_ o: FetchOrder) {
        if let i = waiting.firstIndex(where: { $0.lane > o.lane }) { waiting.insert(o, at: i) } else { waiting.append(o) }
    }

    deinit {
        writer?.stop()
        preparer?.stop()
    }

    init(config: WorkerConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        var transport = config.transport
        transport.lowSpeedTime = max(transport.lowSpeedTime, Self.lowSpeedBackstop)
        self.transport = transport
        self.multi = try CurlMulti(maxConnections: max(config.slots * 2, 4))
    }

    /// Reports of one loop iteration, written with one syscall at its end (`flush`).
    var outbox: [UInt8] = []

    func send(_ m: FromWorker) throws { outbox += try LineCodec.encode(m) }

    func flush() throws {
        guard !outbox.isEmpty else { return }
        try Syscall.writeAll(1, outbox, path: "pipe fd 1")
        outbox.removeAll(keepingCapacity: true)
    }

    func run(reader: inout LineBuffer) -> Int32 {
        _ = fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let anyPaused = active.values.contains { $0.transfer.paused }
            let timeoutMs = Self.pollTimeout(linesWaiting: reader.hasLine, anyPaused: anyPaused)
            let polled = MonotonicTime.now()
            let stdinReady = multi.poll(timeoutMs: timeoutMs, extraFD: stopping ? nil : 0)
            // A poll that outlasts its timeout waited for a CPU, not for a server (stall bounds).
            ownTime += max(0, MonotonicTime.now() - polled - Double(timeoutMs) / 1000)
            if stdinReady {
                while true {
                    let n = chunk.withUnsafeMutableBytes { p in Syscall.retrying { read(0, p.baseAddress, p.count) } }
                    if n > 0 {
                        chunk.withUnsafeBytes { reader.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                        continue
                    }
                    if n == 0 { return 0 }  // coordinator closed our stdin: stop now
                    break  // EAGAIN
                }
            }
            // Also drains lines that arrived together with the configuration.
            while let line = reader.nextLine() {
                guard let msg = try? LineCodec.decode(ToWorker.self, line) else {
                    logger.error("unreadable order from coordinator; exiting")
                    return 2
                }
                handle(msg)
            }
            ownWork { startWaiting() }
            if anyPaused, hasBudget() {
                // Bulk transfers stay paused while a mount read is being fetched.
                let yielding = priorityActive
                for a in active.values where a.transfer.paused && (a.priority || !yielding) { a.transfer.resume() }
            }
            for (t, rc) in multi.perform() { ownWork { finish(t, curlCode: rc) } }
            collectWrites()
            let now = MonotonicTime.now()
            checkStalls(now: now)
            if now - lastHeartbeat >= Worker.heartbeatInterval {
                lastHeartbeat = now
                var p: [Int: Int64] = [:]
                for (id, a) in active { p[id] = a.flushed }
                do { try send(.progress(p)) } catch { return 1 }
            }
            do { try ownWork { try flush() } } catch { return 1 }
            if stopping && active.isEmpty && waiting.isEmpty { return 0 }
        }
    }

    /// How long the loop's poll may wait (ms). Not at all while orders wait in the line buffer:
    /// the first orders often arrive with the configuration, read before the loop starts, and
    /// nothing on stdin or a socket would end the poll for them, and a new worker's first fetch
    /// started a whole poll timeout late (docs/BENCHMARKS.md, worker pool).
    static func pollTimeout(linesWaiting: Bool, anyPaused: Bool) -> Int {
        linesWaiting ? 0 : anyPaused ? 5 : 100
    }

    func handle(_ msg: ToWorker) {
        switch msg {
        case .configure: break
        case .fetch(let o): enqueue(o)
        case .promote(let id, let lane):
            if let a = active[id], lane < .bulk {
                a.priority = true  // running already: it gets the bandwidth from now on
                priorityCount += 1
            }
            if let i = waiting.firstIndex(where: { $0.id == id }), lane < waiting[i].lane {
                var o = waiting.remove(at: i)
                o.lane = lane
                enqueue(o)
            }
        case .rate(let r):
            if let r, r > 0 {
                // Burst of a tenth of a second (at least one receive buffer) keeps pacing smooth.
                bucket = try? TokenBucket(rate: Double(r), burst: max(Double(r) / 10, 512 * 1024),
                                          now: MonotonicTime.now())
            } else {
                bucket = nil
            }
        case .credentials(let c): config.builder.credentials = c
        case .shutdown: stopping = true
        }
    }

    /// Open and preallocate bulk orders' files on the `FilePreparer` thread (measured: see there).
    static let prepareFilesAhead = ProcessInfo.processInfo.environment["SOAK_PREPARE_FILES"] != "0"
    /// Prepares the files of the bulk orders next in line; started by the first one.
    var preparer: FilePreparer?
    /// Orders handed to `preparer` and not yet taken back.
    var requested = Set<Int>()

    /// Whether `o`'s file is opened and preallocated on the preparer's thread: bulk ranges that
    /// get preallocated. The others are opened inline: a handoff per small object made downloads
    /// slower, and creating a file alone seldom waits (docs/BENCHMARKS.md, write path).
    func preparesAhead(_ o: FetchOrder) -> Bool {
        Self.preallocate && o.lane == .bulk && o.length > Self.bufferedStagingSize
    }

    /// Hands the next bulk orders, up to `slots` of them, to the preparer.
    func requestTargets() {
        guard Self.prepareFilesAhead else { return }
        var n = 0
        for o in waiting where o.lane == .bulk {
            if n == config.slots { break }
            n += 1
            if requested.contains(o.id) || !preparesAhead(o) { continue }
            if preparer == nil {
                final class Wake: @unchecked Sendable {  // @unchecked: the CURLM pointer; curl_multi_wakeup is thread-safe
                    let multi: CurlMulti; init(_ m: CurlMulti) { multi = m }
                }
                let wake = Wake(multi)  // curl_multi_wakeup may be called from any thread
                preparer = FilePreparer(prepare: { FetchTargets.open($0) }, onReady: { wake.multi.wakeup() })
            }
            requested.insert(o.id)
            preparer!.request(o)
        }
    }

    /// Takes `id` back from the preparer, closing its file whenever it is ready.
    func withdrawTarget(_ id: Int) {
        if requested.remove(id) != nil { preparer?.discard(id) }
    }

    func startWaiting() {
        requestTargets()
        while let o = waiting.first, active.count < limit(for: o.lane) {
            var target: FilePreparer.Target
            if requested.contains(o.id) {
                if let t = preparer?.take(o.id, wake: o.lane == .bulk) {
                    requested.remove(o.id)
                    target = t
                } else if o.lane == .bulk {
                    break  // the preparer goes in order: nothing behind this one is ready either
                } else {
                    withdrawTarget(o.id)  // promoted to a read lane meanwhile: a read does not wait
                    target = FetchTargets.open(o)
                }
            } else {
                target = FetchTargets.open(o)
            }
            waiting.removeFirst()
            start(o, target)
        }
    }

    /// Starts a transfer for `o` writing into `target`.
    func start(_ o: FetchOrder, _ target: FilePreparer.Target) {
        let fd = target.fd, direct = target.direct
        let stagingSize = Self.stagingSize(direct: direct)
        if fd < 0 {
            report(FetchRegion.openFailed(o, target))
            return
        }
        do {
            let t = try idle.popLast() ?? CurlTransfer()
            let req = config.builder.getObject(bucket: o.bucket, key: o.key, range: o.start...o.end,
                                               ifMatch: o.etag)
            try t.prepare(method: "GET", url: req.url, headers: req.headers, options: transport)
            t.expectedRange = o.start...o.end
            let staging = spareStaging[stagingSize]?.popLast()
                ?? .allocate(byteCount: stagingSize, alignment: Self.directAlignment)
            let a = Active(order: o, transfer: t, fd: fd, startedAt: MonotonicTime.now(), staging: staging)
            a.direct = direct
            if o.publish != nil { a.target = target }
            let writer = direct ? directWriter() : nil
            t.tag = o.id
            t.sink = { [unowned a, unowned self] buf in
                if a.staged + buf.count < a.staging.count {
                    try WorkerLoop.write(a, buf, writer: writer)  // into the staging buffer only
                } else {
                    // Writes a full buffer, or waits for the writer thread: the loop's own time.
                    try self.ownWork { try WorkerLoop.write(a, buf, writer: writer) }
                }
                try self.announce(a)
            }
            a.priority = o.lane < .bulk
            if a.priority { priorityCount += 1 }
            t.admit = { [unowned self, unowned a] n in self.admit(n, priority: a.priority) }
            active[o.id] = a
            try multi.add(t)
        } catch {
            target.release()
            if let a = active.removeValue(forKey: o.id) {
                if a.priority { priorityCount -= 1 }
                retire(a)
            }
            report(FetchReport(id: o.id, bytes: 0, error: S3Error(
                kind: .transport(curlCode: -1), operation: "GetObject", bucket: o.bucket, key: o.key,
                message: "could not start transfer: \(error)"), firstByteLatency: nil))
        }
    }

    /// Transfers marked priority that are still active.
    var priorityCount = 0
    var priorityActive: Bool { priorityCount > 0 }

    func hasBudget() -> Bool {
        guard bucket != nil else { return true }
        return bucket!.available(now: MonotonicTime.now()) > 0
    }

    /// Takes `n` bytes from the rate budget; false (pause) while the budget is in debt. Mount
    /// reads and read-ahead are never paused: they spend the budget (so bulk work waits
    /// longer) but go first, so a prefetch under MAX_SPEED cannot starve a read.
    func admit(_ n: Int, priority: Bool = false) -> Bool {
        // While a mount read is being fetched, bulk transfers pause: their TCP windows close and
        // the read gets the link (docs/BENCHMARKS.md, mount reads under a prefetch).
        if !priority && priorityActive { return false }
        guard bucket != nil else { return true }
        let now = MonotonicTime.now()
        if priority {
            _ = bucket!.reserve(Double(n), now: now)
            return true
        }
        guard bucket!.available(now: now) > 0 else { return false }
        _ = bucket!.reserve(Double(n), now: now)
        return true
    }

    /// Reports a transfer libcurl ended with `curlCode`, or that `stall` abandoned.
    func finish(_ t: CurlTransfer, curlCode: Int32, stall: S3Error? = nil) {
        guard let a = active.removeValue(forKey: t.tag) else { return }
        if a.priority { priorityCount -= 1 }
        let o = a.order
        var err = stall ?? ResponseCheck.error(for: t, curlCode: curlCode, operation: "GetObject", bucket: o.bucket, key: o.key)
        if stall == nil {  // the wait that ended in the last bytes
            _ = a.watch.observe(now: MonotonicTime.now(), own: ownTime, received: t.receivedBytes, sent: true,
                                paused: false)
        }
        settleWrites(a)
        do {
            // A failed background write ends the run of bytes on disk: nothing may follow it.
            if let e = a.writeError { throw e }
            try Self.flushStaging(a)
        } catch {
            err = err ?? FetchRegion.localError(o, error)
        }
        if err == nil {
            do {
                try ResponseCheck.checkRange(t.head, requested: o.start...o.end, bodyBytes: a.written,
                                             operation: "GetObject", bucket: o.bucket, key: o.key)
            } catch let e as S3Error { err = e } catch {}
        }
        // The length check, the publish step and closing: shared with every transport.
        err = FetchRegion.complete(o, target: a.target, fd: a.fd, error: err, received: a.written,
                                   status: t.head.status)
        if err == nil { stallBounds.learn(firstByte: a.watch.firstByteWait, gap: a.watch.longestGap) }
        let latency = t.firstByteAt.map { $0 - a.startedAt }
        t.sink = { _ in }
        idle.append(t)
        report(FetchReport(id: o.id, bytes: a.flushed, error: err, firstByteLatency: latency, crcs: Self.durableCRCs(a)))
        retire(a)
    }

    /// Hands a finished transfer's staging buffer back to the pool (at most one per slot).
    func retire(_ a: Active) {
        let size = a.staging.count
        if spareStaging[size, default: []].count < config.slots + Self.priorityExtraSlots {
            spareStaging[size, default: []].append(a.staging)
        } else {
            a.staging.deallocate()
        }
    }

    func report(_ r: FetchReport) {
        do { try send(.done(r)) } catch { exit(1) }
    }
}
