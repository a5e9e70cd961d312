import SoakCore

/// `mount.fuse.soak`: what `mount -t fuse.soak SOURCE DIR -o OPTIONS` and an fstab line run
/// (soak linked under that name, e.g. `ln -s /usr/local/bin/soak /sbin/mount.fuse.soak`).
/// Translates mount(8)'s call into `soak mount` arguments.
public enum MountHelper {
    public static let name = "mount.fuse.soak"
    /// The arguments soak runs with after translation (a daemonizing mount re-runs these).
    nonisolated(unsafe) public static var effectiveArguments: [String] = []

    /// Options mount(8) or fstab pass that mean nothing to soak (the mount is read-only anyway).
    static let ignored: Set<String> = ["rw", "ro", "defaults", "auto", "noauto", "user", "users", "nouser", "_netdev",
                                       "nofail", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "async", "sync",
                                       "atime", "noatime", "relatime", "x-systemd.automount"]
    /// key=value options and the soak flag each becomes.
    static let valued: [String: String] = [
        "cache_dir": "--cache-dir", "cache_size": "--cache-size", "endpoint_url": "--endpoint-url", "region": "--region",
        "uid": "--uid", "gid": "--gid", "metadata_ttl": "--metadata-ttl", "eager_listing": "--eager-listing", "read_ahead": "--read-ahead",
        "log_level": "--log-level", "metrics_address": "--metrics-address", "addressing": "--addressing", "include": "--include", "exclude": "--exclude",
        "profile": "--profile", "ca_bundle": "--ca-bundle", "request_payer": "--request-payer",
    ]
    static let flags: [String: String] = ["allow_other": "--allow-other", "prefetch": "--prefetch", "no_verify_md5": "--no-verify-md5", "foreground": "--foreground",
                                            "no_sign_request": "--no-sign-request"]

    /// `SOURCE DIR [-o opts] [-n] [-s] [-f] [-v]` → arguments of `soak mount`, plus environment
    /// (none today: `profile=NAME` became `--profile NAME`, so only that profile's providers are used).
    public static func translate(_ args: [String]) throws(UsageError) -> (arguments: [String], environment: [String: String]) {
        var positional: [String] = []
        var options: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == "-o" {
                guard i + 1 < args.count else { throw UsageError("\(name): -o needs options") }
                options += args[i + 1].split(separator: ",").map(String.init)
                i += 2
                continue
            }
            if a.hasPrefix("-o") && a.count > 2 { options += a.dropFirst(2).split(separator: ",").map(String.init) }
            else if ["-n", "-s", "-f", "-v", "-r", "-w"].contains(a) {}  // mount(8)'s own flags
            else if a.hasPrefix("-") { throw UsageError("\(name): unknown flag \(a)") }
            else { positional.append(a) }
            i += 1
        }
        guard positional.count == 2 else { throw UsageError("usage: \(name) s3://BUCKET/PREFIX DIR [-o options]") }
        var out = ["mount", positional[0], positional[1]]
        let env: [String: String] = [:]
        for o in options where !o.isEmpty && !ignored.contains(o) {
            let kv = o.split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2, let flag = valued[kv[0]] { out += [flag, kv[1]]; continue }
            if kv.count == 1, let flag = flags[kv[0]] { out.append(flag); continue }
            // A bare `request_payer` means the one value the aws cli knows.
            if kv == ["request_payer"] { out += ["--request-payer", "requester"]; continue }
            throw UsageError("\(name): unknown option '\(o)' (cache_dir=, cache_size=, endpoint_url=, region=, profile=, "
                             + "no_sign_request, ca_bundle=, request_payer, uid=, gid=, metadata_ttl=, eager_listing=, read_ahead=, log_level=, allow_other, prefetch)")
        }
        return (out, env)
    }
}
