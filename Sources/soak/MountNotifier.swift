import Foundation
import Logging
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

/// What `soak mount --foreground` tells systemd when it runs as a `Type=notify` service
/// (deploy/systemd/soak@.service): `STATUS=` while it lists, `READY=1` once the mount answers,
/// `STOPPING=1` when its loop ends. Nothing without `$NOTIFY_SOCKET`. A background mount's
/// child sends nothing: it is not the process the manager started.
struct MountNotifier {
    let notifier: SystemdNotifier
    let logger: Logger

    init?(environment: [String: String], logger: Logger) {
        guard let n = SystemdNotifier(environment: environment) else { return nil }
        notifier = n
        self.logger = logger
    }

    func starting(source: String) {
        report(notifier.send(["STATUS=listing \(source)"]), "STATUS")
    }

    /// Called once the FUSE session is mounted, before its loop runs. The kernel holds every
    /// request to the mount until the loop has answered FUSE's INIT, so a `stat` of the root that
    /// returns is the mount answering: it runs on its own thread (it blocks until the loop
    /// starts) and `READY=1` follows it. A mount whose root cannot be stat'ed is never reported
    /// ready; systemd's start timeout then fails the unit.
    func mounted(source: String, mountpoint: String) {
        let thread = Thread { [self] in
            var st = stat()
            guard stat(mountpoint, &st) == 0 else {
                logger.warning("the mount at \(mountpoint) does not answer (\(String(cString: strerror(errno)))); not telling systemd it is ready")
                return
            }
            report(notifier.ready(status: "mounted \(source) at \(mountpoint)"), "READY=1")
        }
        thread.start()
    }

    func stopping(mountpoint: String) {
        report(notifier.stopping(status: "unmounting \(mountpoint)"), "STOPPING=1")
    }

    private func report(_ rc: Int32, _ what: String) {
        if rc == 0 {
            logger.debug("told systemd \(what) (\(notifier.socket))")
        } else {
            logger.warning("could not send \(what) to NOTIFY_SOCKET \(notifier.socket): \(String(cString: strerror(rc)))")
        }
    }
}
