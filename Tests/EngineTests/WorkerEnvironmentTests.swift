import XCTest
@testable import Engine

/// The allowlist a worker's environment is built from: what passes, what is dropped, and that
/// passed entries are kept byte for byte and in order.
final class WorkerEnvironmentTests: XCTestCase {
    private func build(_ entries: [String]) -> [String] {
        WorkerEnvironment.build(from: entries.map { Array($0.utf8) }).map { String(decoding: $0, as: UTF8.self) }
    }

    func testProxyTLSLocaleAndSoakVariablesPass() {
        let passed = ["http_proxy=http://proxy:3128", "HTTP_PROXY=http://proxy:3128", "https_proxy=http://p:1",
                      "HTTPS_PROXY=http://p:1", "all_proxy=socks5://s:1080", "ALL_PROXY=socks5://s:1080",
                      "no_proxy=127.0.0.1,.internal", "NO_PROXY=localhost", "SSL_CERT_FILE=/etc/ssl/c.pem",
                      "SSL_CERT_DIR=/etc/ssl/certs", "CURL_CA_BUNDLE=/ca.pem", "OPENSSL_CONF=/etc/ssl/openssl.cnf",
                      "LANG=de_DE.UTF-8", "LANGUAGE=de", "LC_ALL=C.UTF-8", "LC_MESSAGES=fr_FR.UTF-8",
                      "SOAK_DIRECT_IO=0", "SOAK_PREALLOCATE=0", "LD_LIBRARY_PATH=/opt/swift/lib", "LD_PRELOAD=/x.so"]
        XCTAssertEqual(build(passed), passed)
    }

    func testSecretsSystemdAndEverythingUnknownAreDropped() {
        let dropped = ["AWS_ACCESS_KEY_ID=AKID", "AWS_SECRET_ACCESS_KEY=secret", "AWS_SESSION_TOKEN=tok",
                       "AWS_SECURITY_TOKEN=tok", "AWS_PROFILE=prod", "AWS_CA_BUNDLE=/ca.pem", "AWS_REGION=eu-west-1",
                       "AWS_SHARED_CREDENTIALS_FILE=/root/.aws/c", "AWS_CONTAINER_AUTHORIZATION_TOKEN=x",
                       "NOTIFY_SOCKET=/run/systemd/notify", "LISTEN_FDS=1", "INVOCATION_ID=abc", "CREDENTIALS_DIRECTORY=/run/c",
                       "DB_PASSWORD=hunter2", "GITHUB_TOKEN=ghp_x", "PATH=/usr/bin", "HOME=/root", "TMPDIR=/tmp",
                       "TZ=UTC", "SHELL=/bin/sh", "MAX_RETRIES=3", "MAX_SPEED=10", "SSH_AUTH_SOCK=/tmp/agent",
                       // Near misses of allowed names: exact names and prefixes only.
                       "soak_lower=1", "SOAK=1", "SOAK_=1", "LC_=1", "XLANG=1", "LANG_EXTRA=1", "HTTP_PROXY_PASSWORD=x",
                       "http_proxy_user=x", " http_proxy=x", "LD_AUDIT=/x.so"]
        XCTAssertEqual(build(dropped), [])
    }

    func testOrderIsKeptAndMalformedEntriesAreDropped() {
        XCTAssertEqual(build(["SOAK_B=2", "AWS_X=1", "LANG=C", "noequals", "=value", "SOAK_A=1", "SOAK_B=again"]),
                       ["SOAK_B=2", "LANG=C", "SOAK_A=1", "SOAK_B=again"])
        // A value may hold '=' and anything else; only the name decides.
        XCTAssertEqual(build(["SOAK_X=a=b=c", "https_proxy=http://u:p@h:1/?q=1"]),
                       ["SOAK_X=a=b=c", "https_proxy=http://u:p@h:1/?q=1"])
        XCTAssertEqual(build([]), [])
    }

    func testValuesThatAreNotUTF8PassByteForByte() {
        let latin1: [UInt8] = Array("SSL_CERT_FILE=/etc/ssl/".utf8) + [0xE9, 0xFF] + Array(".pem".utf8)
        XCTAssertEqual(WorkerEnvironment.build(from: [latin1, [0xFF, 0x3D, 0x31]]), [latin1])
    }

    /// `current` reads this process's environ: a variable set here is in it, exactly once.
    func testCurrentReadsThisProcesssEnvironment() {
        setenv("SOAK_WORKER_ENV_TEST", "v=1", 1)
        defer { unsetenv("SOAK_WORKER_ENV_TEST") }
        let mine = WorkerEnvironment.current().map { String(decoding: $0, as: UTF8.self) }
        XCTAssertEqual(mine.filter { $0.hasPrefix("SOAK_WORKER_ENV_TEST=") }, ["SOAK_WORKER_ENV_TEST=v=1"])
    }
}
