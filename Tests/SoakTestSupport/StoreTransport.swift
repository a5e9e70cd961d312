/// A `FetchTransport` for tests: a few threads in this process run the orders against any
/// `ObjectStore` (a `MemoryObjectStore`, a `FaultInjectingStore` around one).
///
/// How it works. `start` takes an order into a lane-ordered waiting list; an executor thread
/// takes the first, GETs its range with If-Match from the store, and writes the body through a
/// `RegionWriter` (the same target opening, block CRCs, completion checks and publish step as
/// the worker process), emitting `progress` and `landed` as the bytes go into the file and
/// `done` at the end. Store errors are the order's error as they are; local ones (open, write,
/// publish) get their errno as in the worker.
///
/// Misbehaviour is scripted (`script(_:key:)`, per key or for the next order taken): an executor
/// that dies mid-order (`lost`, as a killed worker process), a transfer the stall watch gives up
/// on (`done` with `.stalled`), an executor gone silent (`lost` as hung after a while, as the
/// pool's hang check reports it, or silent until `stop`), and a rate limit (503 SlowDown).
import Engine
import Foundation
import S3
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

public final class StoreTransport: FetchTransport, @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `cond`.
    private let store: ObjectStore
    private let threads: Int
    /// Orders held at once (waiting or running) for the bulk lane; read lanes get `readReserve` more.
    private let capacity: Int
    private static let readReserve = 4
    private let cond = NSCondition()
    private var waiting: [FetchOrder] = []
    /// Orders an executor is running.
    private var running = Set<Int>()
    private var events: [TransportEvent] = []
    private var woken = false
    private var stopped = false
    private var started = false
    /// Scripted behaviours for the next orders taken, in order.
    private var nextBehaviours: [Behaviour] = []
    /// Scripted behaviours by key: each attempt of an order for the key takes the next one.
    private var keyBehaviours: [String: [Behaviour]] = [:]
    private var restarts = 0
    private var log: [FetchOrder] = []
    private var credentialLog: [Credentials] = []

    private struct Killed: Error {}
    private struct Hung: Error {}
    private struct Stopped: Error {}

    /// What an executor does with an order instead of running it through.
    public enum Behaviour: Sendable, Equatable {
        /// Dies once it has written `afterBytes` of it (0: before its first byte): the order is
        /// reported `lost` after its last progress, as when a worker process is killed.
        case die(afterBytes: Int64)
        /// Receives nothing more after `afterBytes` and gives up as the worker's stall watch
        /// does: the order is `done` with a `.stalled` error and the bytes that landed.
        case stall(afterBytes: Int64)
        /// Goes silent after `afterBytes`, holding the order: after `seconds` it is reported
        /// `lost` as hung (the pool's hang check); with nil, silent until the transport stops.
        case hang(afterBytes: Int64, seconds: Double?)
        /// Refused before any byte with 503 SlowDown (`Retry-After` when given): a rate limit.
        case throttle(retryAfter: Double?)
    }

    /// `threads` executors; at most `capacity` bulk orders held at once (default: two each).
    public init(store: ObjectStore, threads: Int = 3, capacity: Int? = nil) {
        self.store = store
        self.threads = max(1, threads)
        self.capacity = capacity ?? 2 * max(1, threads)
    }

    /// Every order started, in order (retries included, with the start they resumed at).
    public var startedOrders: [FetchOrder] { cond.lock(); defer { cond.unlock() }; return log }
    /// Credentials passed to `updateCredentials`, in order.
    public var credentialUpdates: [Credentials] { cond.lock(); defer { cond.unlock() }; return credentialLog }

    /// The next order taken (`key` nil), or the next attempt of an order for `key`, behaves so;
    /// calls queue up. A key's behaviours come before those for the next order.
    public func script(_ behaviour: Behaviour, key: String? = nil) {
        cond.lock(); defer { cond.unlock() }
        if let key { keyBehaviours[key, default: []].append(behaviour) } else { nextBehaviours.append(behaviour) }
    }

    /// The executor that takes the next order dies once it has written `bytes` of it.
    public func killNext(afterBytes bytes: Int64) { script(.die(afterBytes: bytes)) }

    /// Scripted behaviours not yet used.
    public var scriptedLeft: Int {
        cond.lock(); defer { cond.unlock() }
        return nextBehaviours.count + keyBehaviours.values.reduce(0) { $0 + $1.count }
    }

    public func start() throws {
        cond.lock(); defer { cond.unlock() }
        guard !started else { return }
        started = true
        for i in 0..<threads {
            let t = Thread { [self] in executor() }
            t.name = "soak-store-transport-\(i)"
            t.start()
        }
    }

    public func freeSlots(for lane: Lane) -> Int {
        cond.lock(); defer { cond.unlock() }
        let limit = lane == .bulk ? capacity : capacity + Self.readReserve
        return max(0, limit - waiting.count - running.count)
    }

    public func start(_ order: FetchOrder) -> Bool {
        cond.lock(); defer { cond.unlock() }
        let limit = order.lane == .bulk ? capacity : capacity + Self.readReserve
        guard !stopped, waiting.count + running.count < limit else { return false }
        enqueue(order)
        cond.broadcast()
        return true
    }

    /// Keeps `waiting` ordered by lane, FIFO within a lane (as the worker does).
    private func enqueue(_ o: FetchOrder) {
        if let i = waiting.firstIndex(where: { $0.lane > o.lane }) { waiting.insert(o, at: i) } else { waiting.append(o) }
    }

    public func promote(_ id: Int, to lane: Lane) {
        cond.lock(); defer { cond.unlock() }
        if let i = waiting.firstIndex(where: { $0.id == id }), lane < waiting[i].lane {
            var o = waiting.remove(at: i)
            o.lane = lane
            enqueue(o)
        }
    }

    public func poll(timeout: Double, backlog: Bool) -> [TransportEvent] {
        cond.lock(); defer { cond.unlock() }
        if events.isEmpty && !woken { _ = cond.wait(until: Date(timeIntervalSinceNow: max(0, timeout))) }
        woken = false
        let out = events
        events.removeAll()
        return out
    }

    public func wake() {
        cond.lock(); woken = true; cond.broadcast(); cond.unlock()
    }

    public func updateCredentials(_ credentials: Credentials) {
        cond.lock(); credentialLog.append(credentials); cond.unlock()
    }

    public func status() -> TransportStatus {
        cond.lock(); defer { cond.unlock() }
        var s = TransportStatus()
        s.executors = threads
        s.targetExecutors = threads
        s.inflight = waiting.count + running.count
        s.restarts = restarts
        return s
    }

    public func executorPIDs() -> [pid_t] { [] }

    /// Stops taking orders; those under way are abandoned at their next chunk. Waits (briefly)
    /// until none runs, so their files are closed when it returns.
    public func stop() {
        cond.lock()
        stopped = true
        waiting.removeAll()
        cond.broadcast()
        let deadline = Date(timeIntervalSinceNow: 5)
        while !running.isEmpty && cond.wait(until: deadline) {}
        cond.unlock()
    }

    // MARK: - Executors

    private func emit(_ e: TransportEvent) {
        cond.lock(); events.append(e); cond.broadcast(); cond.unlock()
    }

    private func executor() {
        while true {
            cond.lock()
            while !stopped && waiting.isEmpty { cond.wait() }
            if stopped { cond.unlock(); return }
            let o = waiting.removeFirst()
            running.insert(o.id)
            log.append(o)
            let behaviour = takeBehaviour(for: o.key)
            cond.unlock()
            let final = run(o, behaviour)
            cond.lock()
            running.remove(o.id)
            if let final, !stopped { events.append(final) }
            if case .lost = final { restarts += 1 }
            cond.broadcast()
            cond.unlock()
        }
    }

    /// The behaviour scripted for the next attempt at `key` (under `cond`).
    private func takeBehaviour(for key: String) -> Behaviour? {
        if var forKey = keyBehaviours[key], !forKey.isEmpty {
            let b = forKey.removeFirst()
            keyBehaviours[key] = forKey.isEmpty ? nil : forKey
            return b
        }
        return nextBehaviours.isEmpty ? nil : nextBehaviours.removeFirst()
    }

    /// Runs one order; returns its last event (`done` or `lost`), nil when the transport stopped.
    private func run(_ o: FetchOrder, _ behaviour: Behaviour?) -> TransportEvent? {
        if case .throttle(let after) = behaviour {
            return .done(FetchReport(id: o.id, bytes: 0, error: S3Error(
                kind: .http, operation: "GetObject", bucket: o.bucket, key: o.key, status: 503, code: "SlowDown",
                message: "Please reduce your request rate.", retryAfter: after), firstByteLatency: nil))
        }
        // Where a scripted behaviour cuts the body short.
        var cut: Int64?
        switch behaviour {
        case .die(let n)?, .stall(let n)?, .hang(let n, _)?: cut = n
        default: break
        }
        let writer = RegionWriter(order: o)
        if let failed = writer.openFailure { return .done(failed) }
        let t0 = MonotonicTime.now()
        var firstByte: Double?
        var failure: S3Error?
        var status = 0
        do {
            if cut == 0 { throw Killed() }
            let r = try store.get(bucket: o.bucket, key: o.key, range: o.start...o.end, ifMatch: o.etag) { buf in
                try checkRunning()
                if firstByte == nil { firstByte = MonotonicTime.now() - t0 }
                var chunk = buf
                if let k = cut, writer.written + Int64(buf.count) >= k {
                    chunk = UnsafeRawBufferPointer(rebasing: buf[0..<Int(k - writer.written)])
                }
                try writer.write(chunk)
                emit(.progress(id: o.id, bytes: writer.written))
                if let (first, crcs) = writer.landed() { emit(.landed(id: o.id, first: first, crcs: crcs)) }
                if let k = cut, writer.written >= k { throw Killed() }
            }
            status = r.status
        } catch is Killed {
            switch behaviour {
            case .stall?:
                failure = S3Error(kind: .stalled, operation: "GetObject", bucket: o.bucket, key: o.key,
                                  message: "stalled: nothing more after \(writer.written) bytes (scripted)")
            case .hang(_, let seconds)?:
                let ended = silence(seconds)
                writer.abandon()
                return ended ? .lost(ids: [o.id], reason: "hung") : nil
            default:
                writer.abandon()
                return .lost(ids: [o.id], reason: "killed")
            }
        } catch is Stopped {
            writer.abandon()
            return nil
        } catch let e as S3Error {
            failure = e
            status = e.status
        } catch {
            failure = FetchRegion.localError(o, error)
        }
        return .done(writer.finish(error: failure, status: status, firstByteLatency: firstByte))
    }

    /// Stays silent for `seconds` (nil: until `stop`). False when the transport stopped first.
    private func silence(_ seconds: Double?) -> Bool {
        cond.lock(); defer { cond.unlock() }
        guard let seconds else {
            while !stopped { cond.wait() }
            return false
        }
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !stopped && cond.wait(until: deadline) {}
        return !stopped
    }

    private func checkRunning() throws {
        cond.lock(); defer { cond.unlock() }
        if stopped { throw Stopped() }
    }
}
