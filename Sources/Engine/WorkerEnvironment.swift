/// The environment a worker process starts with: an allowlist over the coordinator's.
///
/// A worker takes nothing secret from its environment: credentials (and fresh ones later) and
/// the CA bundle path (`AWS_CA_BUNDLE`, resolved by the coordinator) arrive in messages on its
/// stdin. So it gets only what the libraries it runs read, and soak's own knobs: no `AWS_*`
/// (keys, tokens, profile and file names), no `NOTIFY_SOCKET` (systemd's; only the service's
/// main process may answer it), and nothing else of the caller's, which soak cannot know to be
/// harmless. Also left out, because a worker does not use them: `PATH` (it runs no program),
/// `HOME` (it reads no file under it: the shared AWS files are the coordinator's business),
/// `TMPDIR` (its files are made in the destination or cache directory), `TZ` (it formats no
/// local time: signatures use UTC and log lines carry no time).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum WorkerEnvironment {
    /// Variables passed by exact name.
    public static let names: Set<String> = [
        // libcurl's proxy settings (it reads http_proxy in lower case only; both cases of the rest).
        "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY",
        // TLS trust and configuration (OpenSSL's variables, curl's CA convention): paths, not
        // secrets, passed so that a worker trusts what the coordinator trusts.
        "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "OPENSSL_CONF",
        // The locale (LC_* by prefix below): the C library's messages, such as strerror's.
        "LANG", "LANGUAGE",
        // The dynamic loader's: a worker is this same binary and must load what the coordinator loaded.
        "LD_LIBRARY_PATH", "LD_PRELOAD",
    ]
    /// Variables passed by prefix: soak's own knobs, and the locale's categories.
    public static let prefixes = ["SOAK_", "LC_"]

    /// Whether a variable named `name` reaches a worker.
    public static func allows(_ name: String) -> Bool {
        names.contains(name) || prefixes.contains { name.hasPrefix($0) && name.count > $0.count }
    }

    /// The worker's environment from the coordinator's `NAME=VALUE` entries: those `allows`
    /// passes, byte for byte and in their order. Entries without a name (no `=`, or a leading one)
    /// are dropped.
    public static func build(from parent: [[UInt8]]) -> [[UInt8]] {
        parent.filter { entry in
            guard let eq = entry.firstIndex(of: UInt8(ascii: "=")), eq > 0 else { return false }
            return allows(String(decoding: entry[..<eq], as: UTF8.self))
        }
    }

    /// This process's environment (`environ`), entry by entry, as bytes (a value need not be UTF-8).
    public static func current() -> [[UInt8]] {
        var out: [[UInt8]] = []
        var p = environ
        while let entry = p.pointee {
            out.append(Array(UnsafeBufferPointer(start: UnsafeRawPointer(entry).assumingMemoryBound(to: UInt8.self),
                                                 count: strlen(entry))))
            p += 1
        }
        return out
    }
}
