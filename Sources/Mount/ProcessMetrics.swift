/// The conventional `process_*` metrics of this process and `soak_workers_*` sums over its
/// worker processes (`soak __worker` children), read from /proc at each update.
import Foundation
import Prometheus
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public final class ProcessMetrics: Sendable {
    private let cpu: Counter, resident: Gauge, virtual: Gauge, fds: Gauge, start: Gauge
    private let workerCPU: Counter, workerResident: Gauge, workerCount: Gauge
    /// CPU seconds at the last update: this process's, and the workers': the reaped children's
    /// (getrusage, exact) plus the live workers' (/proc). A worker's time moves from one to the
    /// other when it is reaped, so the sum only grows.
    private let last = Mutex<(cpu: Double, workers: Double)>((0, 0))

    public init(registry: PrometheusCollectorRegistry) {
        cpu = registry.makeCounter(name: "process_cpu_seconds_total", help: "User and system CPU time of the main process")
        resident = registry.makeGauge(name: "process_resident_memory_bytes", help: "Resident memory of the main process")
        virtual = registry.makeGauge(name: "process_virtual_memory_bytes", help: "Virtual memory of the main process")
        fds = registry.makeGauge(name: "process_open_fds", help: "Open file descriptors of the main process")
        start = registry.makeGauge(name: "process_start_time_seconds", help: "Start time of the main process, since the epoch")
        workerCPU = registry.makeCounter(name: "soak_workers_cpu_seconds_total",
                                         help: "User and system CPU time of the worker processes, exited ones included")
        workerResident = registry.makeGauge(name: "soak_workers_resident_memory_bytes",
                                            help: "Resident memory of the live worker processes, summed")
        workerCount = registry.makeGauge(name: "soak_workers_processes", help: "Worker processes found in /proc")
    }

    public func update() {
        let me = ProcessStats.read()
        var workers: [pid_t: ProcessStats] = [:]
        for pid in ProcessStats.children(withArgument: "__worker") { workers[pid] = ProcessStats.read(pid: pid) }
        var ru = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &ru)
        let reaped = Double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + Double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6
        let workersNow = reaped + workers.values.reduce(0) { $0 + $1.cpuSeconds }
        let (cpuDelta, workerDelta) = last.withLock { last in
            var cpuDelta = 0.0, workerDelta = 0.0
            if let me, me.cpuSeconds > last.cpu { cpuDelta = me.cpuSeconds - last.cpu; last.cpu = me.cpuSeconds }
            if workersNow > last.workers { workerDelta = workersNow - last.workers; last.workers = workersNow }
            return (cpuDelta, workerDelta)
        }
        if cpuDelta > 0 { cpu.increment(by: cpuDelta) }
        if workerDelta > 0 { workerCPU.increment(by: workerDelta) }
        if let me {
            resident.set(Double(me.residentBytes))
            virtual.set(Double(me.virtualBytes))
            if let n = me.openFDs { fds.set(Double(n)) }
            start.set(me.startTime)
        }
        workerResident.set(Double(workers.values.reduce(Int64(0)) { $0 + $1.residentBytes }))
        workerCount.set(Double(workers.count))
    }
}
