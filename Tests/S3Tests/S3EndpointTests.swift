/// Endpoint URL parsing and the path/virtual/auto addressing decision.
import Foundation
import XCTest
@testable import S3

final class S3EndpointTests: XCTestCase {
    func endpoint(_ url: String?, region: String = "us-east-1", _ addressing: Addressing = .auto) throws -> S3Endpoint {
        try S3Endpoint(url: url, region: region, addressing: addressing)
    }

    // MARK: - Parsing

    func testDefaultAWSEndpoint() throws {
        let e = try endpoint(nil, region: "eu-central-1")
        XCTAssertEqual(e.scheme, "https")
        XCTAssertEqual(e.host, "s3.eu-central-1.amazonaws.com")
        XCTAssertNil(e.port)
        XCTAssertFalse(e.isCustom)
        XCTAssertEqual(e.urlString, "https://s3.eu-central-1.amazonaws.com")
        XCTAssertEqual(try endpoint("", region: "us-east-1").host, "s3.us-east-1.amazonaws.com")
        XCTAssertEqual(try endpoint(nil, region: "cn-north-1").host, "s3.cn-north-1.amazonaws.com.cn")
    }

    func testCustomEndpoints() throws {
        let a = try endpoint("http://localhost:8333")
        XCTAssertEqual(a.scheme, "http"); XCTAssertEqual(a.host, "localhost"); XCTAssertEqual(a.port, 8333)
        XCTAssertTrue(a.isCustom)
        XCTAssertEqual(a.authority, "localhost:8333")

        let b = try endpoint("HTTPS://MinIO.Example.COM:9000/")
        XCTAssertEqual(b.scheme, "https"); XCTAssertEqual(b.host, "minio.example.com"); XCTAssertEqual(b.port, 9000)

        let c = try endpoint("  http://10.0.0.5  ")
        XCTAssertEqual(c.host, "10.0.0.5"); XCTAssertNil(c.port)

        let d = try endpoint("http://[::1]:9000")
        XCTAssertEqual(d.host, "[::1]"); XCTAssertEqual(d.port, 9000); XCTAssertEqual(d.authority, "[::1]:9000")
        XCTAssertTrue(d.hostIsIPLiteral)

        let f = try endpoint("http://[FE80::1]")
        XCTAssertEqual(f.host, "[fe80::1]"); XCTAssertNil(f.port)

        let g = try endpoint("http://seaweedfs_s3:8333") // docker-compose service names may contain '_'
        XCTAssertEqual(g.host, "seaweedfs_s3")
    }

    func testDefaultPortsAreDropped() throws {
        XCTAssertNil(try endpoint("https://s3.example.com:443").port)
        XCTAssertNil(try endpoint("http://s3.example.com:80").port)
        XCTAssertEqual(try endpoint("http://s3.example.com:443").port, 443)
        XCTAssertEqual(try endpoint("https://s3.example.com:80").port, 80)
    }

    func testInvalidEndpointURLs() {
        let bad: [(String, String)] = [
            ("localhost:9000", "expected http"),
            ("ftp://host", "scheme must be http or https"),
            ("http://", "missing host"),
            ("http://host:0", "port"),
            ("http://host:65536", "port"),
            ("http://host:abc", "port"),
            ("http://host:", "port"),
            ("http://host/bucket", "path"),
            ("http://host/a/b/", "path"),
            ("http://host?x=1", "query"),
            ("http://host#f", "query"),
            ("http://user:pw@host", "credentials"),
            ("http://ho st", "characters"),
            ("http://host..com", "empty label"),
            ("http://::1:9000", "IPv6"),
            ("http://[::1", "IPv6"),
            ("http://[zz]", "IPv6"),
            ("http://[::1]x", "after the IPv6"),
        ]
        for (url, why) in bad {
            XCTAssertThrowsError(try endpoint(url), url) { e in
                guard let ee = e as? S3EndpointError else { return XCTFail("\(url): wrong error type \(e)") }
                XCTAssertTrue(ee.description.contains(why), "\(url): \(ee)")
                XCTAssertTrue(ee.description.contains(url), "\(url): \(ee)")
                XCTAssertFalse(ee.description.contains("\n"))
            }
        }
    }

    func testInvalidRegions() {
        XCTAssertThrowsError(try endpoint(nil, region: ""))
        XCTAssertThrowsError(try endpoint(nil, region: "us east 1"))
        XCTAssertThrowsError(try endpoint(nil, region: "evil.com/x"))
        XCTAssertThrowsError(try endpoint(nil, region: "a_b"))
        XCTAssertNoThrow(try endpoint("http://localhost:9000", region: "garage"))
    }

    func testResolveOrder() throws {
        let env = ["AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": "http://s3specific:2"]
        XCTAssertEqual(try S3Endpoint.resolve(flag: "http://flag:3", environment: env, region: "us-east-1").host, "flag")
        XCTAssertEqual(try S3Endpoint.resolve(flag: nil, environment: env, region: "us-east-1").host, "s3specific")
        XCTAssertEqual(try S3Endpoint.resolve(flag: " ", environment: ["AWS_ENDPOINT_URL": "http://generic:1"],
                                              region: "us-east-1").host, "generic")
        let def = try S3Endpoint.resolve(flag: nil, environment: [:], region: "us-west-2", addressing: .path)
        XCTAssertEqual(def.host, "s3.us-west-2.amazonaws.com")
        XCTAssertEqual(def.addressing, .path)
    }

    // MARK: - Addressing

    func testDNSCompatibility() {
        for ok in ["abc", "my-bucket", "a1b2c3", String(repeating: "a", count: 63)] {
            XCTAssertTrue(S3Endpoint.isDNSCompatible(bucket: ok, allowDots: false), ok)
        }
        XCTAssertTrue(S3Endpoint.isDNSCompatible(bucket: "my.bucket", allowDots: true))
        XCTAssertFalse(S3Endpoint.isDNSCompatible(bucket: "my.bucket", allowDots: false))
        for bad in ["ab", String(repeating: "a", count: 64), "MyBucket", "my_bucket", "-abc", "abc-", ".abc", "abc.",
                    "a..b", "a.-b", "a-.b", "192.168.5.4", "my bucket", "ab/c", ""] {
            XCTAssertFalse(S3Endpoint.isDNSCompatible(bucket: bad, allowDots: true), bad)
        }
        XCTAssertTrue(S3Endpoint.isDNSCompatible(bucket: "1.2.3.4.5", allowDots: true)) // not IPv4-shaped
        XCTAssertTrue(S3Endpoint.looksLikeIPv4("0.0.0.0"))
        XCTAssertFalse(S3Endpoint.looksLikeIPv4("256.1.1.1"))
        XCTAssertFalse(S3Endpoint.looksLikeIPv4("1.2.3"))
        XCTAssertTrue(S3Endpoint.looksLikeIPv4("010.1.255.9"))
        for bad in ["1.2.3.4.", ".1.2.3", "1..2.3", "1.2.3.4.5", "1234.1.1.1", "1.2.3.a", "1.2.3.", "", "٣.1.1.1", " 1.2.3.4"] {
            XCTAssertFalse(S3Endpoint.looksLikeIPv4(bad), bad)
        }
    }

    func testAutoAddressing() throws {
        let aws = try endpoint(nil)
        XCTAssertTrue(aws.usesVirtualHosting(bucket: "my-bucket"))
        XCTAssertFalse(aws.usesVirtualHosting(bucket: "my.bucket"), "dots over https break wildcard certificates")
        XCTAssertFalse(aws.usesVirtualHosting(bucket: "My_Bucket"))

        let httpCustom = try endpoint("http://s3.internal:9000")
        XCTAssertTrue(httpCustom.usesVirtualHosting(bucket: "my.bucket"), "dots are fine without TLS")
        XCTAssertTrue(httpCustom.usesVirtualHosting(bucket: "data"))

        for host in ["http://localhost:8333", "http://127.0.0.1:9000", "http://[::1]:9000", "https://10.1.2.3",
                     "http://minio.localhost:9000"] {
            XCTAssertFalse(try endpoint(host).usesVirtualHosting(bucket: "data"), host)
        }
    }

    func testForcedAddressing() throws {
        XCTAssertFalse(try endpoint(nil, .path).usesVirtualHosting(bucket: "my-bucket"))
        XCTAssertTrue(try endpoint("http://localhost:9000", .virtual).usesVirtualHosting(bucket: "data"))
    }

    func testHostAndPath() throws {
        let v = try endpoint(nil)
        XCTAssertEqual(v.hostHeader(bucket: "b-1"), "b-1.s3.us-east-1.amazonaws.com")
        XCTAssertEqual(v.canonicalURI(bucket: "b-1", key: "dir/file.txt"), "/dir/file.txt")
        XCTAssertEqual(v.canonicalURI(bucket: "b-1", key: nil), "/")
        XCTAssertEqual(v.url(bucket: "b-1", key: "k"), "https://b-1.s3.us-east-1.amazonaws.com/k")

        let p = try endpoint("http://localhost:8333")
        XCTAssertEqual(p.hostHeader(bucket: "data"), "localhost:8333")
        XCTAssertEqual(p.canonicalURI(bucket: "data", key: "dir/file.txt"), "/data/dir/file.txt")
        XCTAssertEqual(p.canonicalURI(bucket: "data", key: nil), "/data")
        XCTAssertEqual(p.url(bucket: "data", key: "a b"), "http://localhost:8333/data/a%20b")
        // Legacy bucket names that are not DNS-safe are still encoded safely in the path.
        XCTAssertEqual(p.canonicalURI(bucket: "Odd_Bucket", key: "x"), "/Odd_Bucket/x")
    }

    func testKeysAreNotNormalized() throws {
        let p = try endpoint("http://localhost:8333")
        XCTAssertEqual(p.canonicalURI(bucket: "b", key: "a//b/./c/../d/"), "/b/a//b/./c/../d/")
        XCTAssertEqual(p.canonicalURI(bucket: "b", key: "/leading"), "/b//leading")
    }

    func testCodable() throws {
        let e = try endpoint("http://[::1]:9000", region: "garage", .virtual)
        let back = try JSONDecoder().decode(S3Endpoint.self, from: JSONEncoder().encode(e))
        XCTAssertEqual(back, e)
        XCTAssertEqual(Addressing.allCases.map(\.rawValue), ["path", "virtual", "auto"])
        XCTAssertEqual(Addressing(rawValue: "virtual"), .virtual)
    }
}
