/// Proxies reach S3 requests: a CONNECT-less HTTP proxy stub on 127.0.0.1 answers in the
/// server's place and counts what it got; NO_PROXY sends requests around it.
import Foundation
import XCTest
@testable import S3

final class ProxyTests: XCTestCase {
    static let listing = "<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>"

    func testEnvironmentRules() {
        XCTAssertNil(ProxySettings.fromEnvironment(["HOME": "/"]))
        // libcurl ignores upper-case HTTP_PROXY; HTTPS_PROXY and ALL_PROXY count.
        XCTAssertNil(ProxySettings.fromEnvironment(["HTTP_PROXY": "http://p:1"]))
        let p = ProxySettings.fromEnvironment(["http_proxy": "http://h:1", "HTTPS_PROXY": "http://s:2", "NO_PROXY": "x"])
        XCTAssertEqual(p?.proxy(for: "http://a/b"), "http://h:1")
        XCTAssertEqual(p?.proxy(for: "https://a/b"), "http://s:2")
        XCTAssertEqual(p?.noProxy, "x")
        XCTAssertEqual(ProxySettings.fromEnvironment(["ALL_PROXY": "http://all:3"])?.proxy(for: "http://a"), "http://all:3")
    }

    func store(endpoint url: String, proxy: ProxySettings?) throws -> CurlObjectStore {
        var options = TransportOptions()
        options.proxy = proxy
        let endpoint = try S3Endpoint(url: url, region: "us-east-1", addressing: .path)
        return try CurlObjectStore(builder: S3RequestBuilder(endpoint: endpoint, credentials: Credentials(accessKeyId: "A", secretAccessKey: "s")),
                                   options: options)
    }

    func testRequestsGoThroughTheProxyUnlessNoProxySaysOtherwise() throws {
        let proxy = try StubHTTPServer { _ in .text(200, Self.listing, type: "application/xml") }
        let origin = try StubHTTPServer { _ in .text(200, Self.listing, type: "application/xml") }
        // A host only the proxy can reach: the request must go through it.
        let viaProxy = try store(endpoint: "http://s3.soak-test.invalid:9000",
                                 proxy: ProxySettings.fromEnvironment(["http_proxy": proxy.url, "NO_PROXY": "other.example"]))
        _ = try viaProxy.listPage(bucket: "b", prefix: "p", delimiter: nil, continuationToken: nil, maxKeys: 5)
        _ = try viaProxy.listPage(bucket: "b", prefix: "q", delimiter: nil, continuationToken: nil, maxKeys: 5)
        XCTAssertEqual(proxy.requests.count, 2)
        XCTAssertTrue(proxy.requests[0].path.hasPrefix("http://s3.soak-test.invalid:9000/b?"), proxy.requests[0].path)
        // NO_PROXY naming the origin: straight there, the proxy sees nothing more.
        let direct = try store(endpoint: origin.url, proxy: ProxySettings.fromEnvironment(["http_proxy": proxy.url, "no_proxy": "127.0.0.1"]))
        _ = try direct.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 5)
        XCTAssertEqual(proxy.requests.count, 2)
        XCTAssertEqual(origin.requests.count, 1)
        // An https-only proxy leaves http requests alone, even with a proxy in this process's environment.
        let httpsOnly = try store(endpoint: origin.url, proxy: ProxySettings(httpsProxy: proxy.url))
        _ = try httpsOnly.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 5)
        XCTAssertEqual(origin.requests.count, 2)
        XCTAssertEqual(proxy.requests.count, 2)
    }
}
