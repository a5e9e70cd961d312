import Foundation
import XCTest

/// The aws contract against a real SeaweedFS: proxies reach the coordinator's and the workers'
/// requests (a CONNECT-less forward proxy on 127.0.0.1 counts them), and `--request-payer`
/// is sent signed on every request (SeaweedFS checks the signature over it).
final class AWSContractIntegrationTests: XCTestCase {
    var endpoint = ""
    var bucket = ""
    var work = ""

    override func setUpWithError() throws {
        endpoint = try Harness.requireServer()
        bucket = Harness.uniqueBucket("awscontract")
        work = try Harness.tempDir("aws")
        try Harness.fixture(["mkbucket", bucket])
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: work)
    }

    /// Starts scripts/httpproxy.py; returns it and its URL.
    func startProxy(countFile: String) throws -> (Process, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Harness.repoRoot + "/scripts/httpproxy.py", countFile]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        guard let port = line.split(separator: "=").last.map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }),
              Int(port) != nil else {
            p.terminate()
            throw NSError(domain: "proxy", code: 1, userInfo: [NSLocalizedDescriptionKey: "no PORT line: \(line)"])
        }
        return (p, "http://127.0.0.1:\(port)")
    }

    func testProxyCarriesEveryRequestAndRequestPayerIsSigned() throws {
        let files: [String: Int] = ["a.bin": 300_000, "b/c.bin": 1000, "d.bin": 20 * 1024 * 1024 + 5]
        let sums = try Harness.uploadTree(files, bucket: bucket, prefix: "p/", work: work)
        let countFile = work + "/proxy.log"
        FileManager.default.createFile(atPath: countFile, contents: nil)
        let (proxy, proxyURL) = try startProxy(countFile: countFile)
        defer { proxy.terminate(); proxy.waitUntilExit() }
        let dest = work + "/dest"
        let r = try Harness.soak(["download", "s3://\(bucket)/p/", dest, "--endpoint-url", endpoint,
                                  "--request-payer", "requester"],
                                 env: ["http_proxy": proxyURL, "MIN_PROCESSES": "2", "SOAK_INITIAL_PROCESSES": "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for (key, sum) in sums { XCTAssertEqual(try Harness.sha256(dest + "/" + key), sum, key) }
        let seen = (try String(contentsOfFile: countFile, encoding: .utf8)).split(separator: "\n")
        let host = endpoint.replacingOccurrences(of: "http://", with: "")
        XCTAssertTrue(seen.allSatisfy { $0.contains("http://" + host + "/") }, "\(seen)")
        // The payer header on every request, list and GET alike (and signed: SeaweedFS answered).
        XCTAssertTrue(seen.allSatisfy { $0.hasSuffix(" payer=requester") }, "\(seen)")
        XCTAssertTrue(seen.contains { $0.hasPrefix("GET ") && $0.contains("list-type=2") }, "\(seen)")  // coordinator
        // Workers: every object's GETs (the 20 MiB one in several ranges).
        let gets = seen.filter { $0.hasPrefix("GET ") && !$0.contains("list-type=2") }
        XCTAssertGreaterThanOrEqual(gets.count, files.count + 2, "\(seen)")
        for key in files.keys { XCTAssertTrue(gets.contains { $0.contains("/p/" + key) }, key) }

        // NO_PROXY naming the server: nothing goes through the proxy.
        let before = seen.count
        let r2 = try Harness.soak(["download", "s3://\(bucket)/p/", work + "/dest2", "--endpoint-url", endpoint],
                                  env: ["http_proxy": proxyURL, "NO_PROXY": "127.0.0.1"])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual((try String(contentsOfFile: countFile, encoding: .utf8)).split(separator: "\n").count, before)
    }
}
