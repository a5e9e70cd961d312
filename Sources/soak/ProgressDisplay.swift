import Engine
import Foundation
import Logging
import SoakCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress bar on a terminal (redrawn in place on stderr); on anything else a
/// `soak: progress:` log line at most every `logInterval` seconds, the first one `logInterval`
/// after the start (a short run prints none). Progress lines show at every log level; only
/// `--quiet` and `--no-progress` turn them off (`enabled`).
final class ProgressDisplay {
    /// Non-TTY progress lines: frequent enough to show life, rare enough not to flood logs.
    static let logInterval = 5.0
    /// Redraw at most this often on a TTY.
    static let redrawInterval = 0.2

    let tty = isatty(2) != 0
    let enabled: Bool
    let start = Date()
    lazy var lastDraw = tty ? Date.distantPast : start
    var drewLine = false
    var lastBytes: Int64 = 0
    var lastTime = Date()
    var smoothedRate = 0.0

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ p: DownloadProgress) {
        guard enabled else { return }
        let now = Date()
        let dt = now.timeIntervalSince(lastTime)
        if dt >= 0.2 {
            let inst = Double(p.bytesDone - lastBytes) / dt
            smoothedRate = smoothedRate == 0 ? inst : smoothedRate * 0.7 + inst * 0.3
            lastBytes = p.bytesDone; lastTime = now
        }
        if tty {
            guard now.timeIntervalSince(lastDraw) >= Self.redrawInterval else { return }
            lastDraw = now
            let line = render(p, width: terminalWidth())
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            drewLine = true
        } else if now.timeIntervalSince(lastDraw) >= Self.logInterval {
            lastDraw = now
            SoakLogging.write("soak: progress: \(render(p, width: 0))", at: now)
        }
    }

    /// Draws the final state (so a TTY ends at 100%) and ends the line.
    func finish(_ p: DownloadProgress) {
        if drewLine {
            lastDraw = .distantPast
            update(p)
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }

    func render(_ p: DownloadProgress, width: Int) -> String {
        let frac = p.bytesTotal > 0 ? min(1, Double(p.bytesDone) / Double(p.bytesTotal)) : (p.objectsTotal == p.objectsDone ? 1 : 0)
        let eta: String
        if smoothedRate > 0 && p.bytesTotal > p.bytesDone {
            eta = Self.duration(Double(p.bytesTotal - p.bytesDone) / smoothedRate)
        } else { eta = "--:--" }
        let stats = String(format: "%.1f/%.1f MB  %d/%d obj  %.0f MB/s  ETA %@  workers %d",
                           Double(p.bytesDone) / 1e6, Double(p.bytesTotal) / 1e6, p.objectsDone, p.objectsTotal,
                           smoothedRate / 1e6, eta, p.engine.workers)
        guard width > 0 else { return String(format: "%3.0f%% ", frac * 100) + stats }
        let barWidth = max(10, min(40, width - stats.count - 9))
        let filled = Int(frac * Double(barWidth))
        return "[" + String(repeating: "#", count: filled) + String(repeating: " ", count: barWidth - filled) + "] "
            + String(format: "%3.0f%% ", frac * 100) + stats
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }

    func terminalWidth() -> Int {
        var ws = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &ws) == 0 && ws.ws_col > 0 { return Int(ws.ws_col) }
        return 100
    }
}

/// Catches SIGINT and SIGTERM so the run can stop cleanly (workers reaped, partials kept).
final class SignalWatcher: Sendable {
    private let value = Mutex<Int32?>(nil)
    /// Held to keep the sources alive; unchecked (Dispatch's sources are not Sendable): only
    /// `init` touches it.
    nonisolated(unsafe) private var sources: [any DispatchSourceSignal] = []

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { [weak self] in
                self?.value.withLock { v in if v == nil { v = sig } }
            }
            src.resume()
            sources.append(src)
        }
    }

    var received: Int32? { value.withLock { $0 } }
}
