/// End-to-end request building: URL, Host, signing headers, and awkward keys.
import Foundation
import XCTest
@testable import S3

final class S3RequestBuilderTests: XCTestCase {
    static let docCredentials = Credentials(accessKeyId: "AKIAIOSFODNN7EXAMPLE",
                                            secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    static let docDate = Date(timeIntervalSince1970: 1_369_353_600) // 2013-05-24T00:00:00Z

    /// The S3 documentation examples address `examplebucket.s3.amazonaws.com`.
    func docBuilder() throws -> S3RequestBuilder {
        S3RequestBuilder(endpoint: try S3Endpoint(url: "https://s3.amazonaws.com", region: "us-east-1",
                                                  addressing: .virtual),
                         credentials: Self.docCredentials)
    }

    func signature(_ r: SignedRequest) -> String? {
        r.header("Authorization")?.components(separatedBy: "Signature=").last
    }

    // MARK: - The documented examples, built end to end

    func testGetObjectDocExample() throws {
        let r = try docBuilder().getObject(bucket: "examplebucket", key: "test.txt", range: 0...9, date: Self.docDate)
        XCTAssertEqual(r.method, "GET")
        XCTAssertEqual(r.url, "https://examplebucket.s3.amazonaws.com/test.txt")
        XCTAssertEqual(r.header("host"), "examplebucket.s3.amazonaws.com")
        XCTAssertEqual(r.header("Range"), "bytes=0-9")
        XCTAssertEqual(r.header("x-amz-date"), "20130524T000000Z")
        XCTAssertEqual(r.header("x-amz-content-sha256"), SigV4Signer.emptyPayloadHash)
        XCTAssertNil(r.header("x-amz-security-token"))
        XCTAssertEqual(signature(r), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        XCTAssertEqual(r.headers.map(\.name), ["Host", "Range", "Authorization", "x-amz-date", "x-amz-content-sha256"])
    }

    func testListObjectsDocExample() throws {
        let r = try docBuilder().request(method: "GET", bucket: "examplebucket", key: nil,
                                         query: [("prefix", "J"), ("max-keys", "2")], date: Self.docDate)
        XCTAssertEqual(r.url, "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J")
        XCTAssertEqual(signature(r), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    func testLifecycleDocExample() throws {
        let r = try docBuilder().request(method: "GET", bucket: "examplebucket", key: nil,
                                         query: [("lifecycle", "")], date: Self.docDate)
        XCTAssertEqual(r.url, "https://examplebucket.s3.amazonaws.com/?lifecycle=")
        XCTAssertEqual(signature(r), "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    // MARK: - Convenience requests

    func testListObjectsV2Query() throws {
        let b = S3RequestBuilder(endpoint: try S3Endpoint(url: "http://localhost:8333", region: "us-east-1"),
                                 credentials: Self.docCredentials)
        let r = b.listObjectsV2(bucket: "data", prefix: "runs/2024 q1/", delimiter: "/",
                                continuationToken: "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", maxKeys: 500)
        XCTAssertEqual(r.url, "http://localhost:8333/data?continuation-token=1ueGcxLPRx1Tr%2FXYExHnhbYLgveDs2J%2Fwm36Hy4vbOwM%3D"
                       + "&delimiter=%2F&list-type=2&max-keys=500&prefix=runs%2F2024%20q1%2F")
        XCTAssertEqual(r.header("Host"), "localhost:8333")

        let minimal = b.listObjectsV2(bucket: "data", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 1000)
        XCTAssertEqual(minimal.url, "http://localhost:8333/data?list-type=2&max-keys=1000")
        let empties = b.listObjectsV2(bucket: "data", prefix: "", delimiter: "", continuationToken: "", maxKeys: 1000)
        XCTAssertEqual(empties.url, minimal.url)
        let encoded = b.listObjectsV2(bucket: "data", prefix: "p", encodingTypeURL: true)
        XCTAssertEqual(encoded.url, "http://localhost:8333/data?encoding-type=url&list-type=2&max-keys=1000&prefix=p")
    }

    func testHeadObject() throws {
        let b = S3RequestBuilder(endpoint: try S3Endpoint(url: nil, region: "eu-west-1"), credentials: Self.docCredentials)
        let r = b.headObject(bucket: "my-bucket", key: "a/b.bin")
        XCTAssertEqual(r.method, "HEAD")
        XCTAssertEqual(r.url, "https://my-bucket.s3.eu-west-1.amazonaws.com/a/b.bin")
        XCTAssertTrue(r.header("Authorization")!.contains("/eu-west-1/s3/aws4_request"))
        XCTAssertTrue(r.header("Authorization")!.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"))
    }

    func testGetObjectIfMatchIsQuotedAndSigned() throws {
        let b = try docBuilder()
        for given in ["abc-3", "\"abc-3\"", " abc-3 "] {
            let r = b.getObject(bucket: "examplebucket", key: "k", range: 100...199, ifMatch: given, date: Self.docDate)
            XCTAssertEqual(r.header("If-Match"), "\"abc-3\"", given)
            XCTAssertEqual(r.header("Range"), "bytes=100-199")
            XCTAssertTrue(r.header("Authorization")!.contains("SignedHeaders=host;if-match;range;x-amz-content-sha256;x-amz-date,"))
        }
        let plain = b.getObject(bucket: "examplebucket", key: "k")
        XCTAssertNil(plain.header("Range"))
        XCTAssertNil(plain.header("If-Match"))
        XCTAssertEqual(b.getObject(bucket: "examplebucket", key: "k", range: 0...0).header("Range"), "bytes=0-0")
        let big: ClosedRange<Int64> = 5_000_000_000_000...5_000_000_000_999
        XCTAssertEqual(b.getObject(bucket: "examplebucket", key: "k", range: big).header("Range"),
                       "bytes=5000000000000-5000000000999")
        XCTAssertEqual(S3RequestBuilder.quotedETag("*"), "*")
        XCTAssertEqual(S3RequestBuilder.quotedETag("abc"), "\"abc\"")
        XCTAssertEqual(S3RequestBuilder.quotedETag(" abc\t"), "\"abc\"")
        XCTAssertEqual(S3RequestBuilder.quotedETag("W/abc"), "\"W/abc\"")
        XCTAssertEqual(S3RequestBuilder.quotedETag("a\"b"), "\"a\"b\"")
        XCTAssertEqual(S3RequestBuilder.quotedETag("W/\"x\""), "W/\"x\"")
        XCTAssertEqual(S3RequestBuilder.quotedETag("\"half"), "\"half\"")
    }

    func testSessionTokenIsSent() throws {
        var creds = Self.docCredentials
        creds.sessionToken = "FwoGZXIvYXdzEJr//////////wEaDM+token="
        let b = S3RequestBuilder(endpoint: try S3Endpoint(url: nil, region: "us-east-1"), credentials: creds)
        let r = b.getObject(bucket: "bkt", key: "k")
        XCTAssertEqual(r.header("X-Amz-Security-Token"), creds.sessionToken)
        XCTAssertTrue(r.header("Authorization")!.contains("x-amz-security-token"))
    }

    func testCallerHostHeaderIsIgnored() throws {
        let b = try docBuilder()
        let r = b.request(method: "GET", bucket: "examplebucket", key: "test.txt",
                          headers: [("Host", "evil.example"), ("Range", "bytes=0-9")], date: Self.docDate)
        XCTAssertEqual(r.headers.filter { $0.name.lowercased() == "host" }.count, 1)
        XCTAssertEqual(r.header("Host"), "examplebucket.s3.amazonaws.com")
        XCTAssertEqual(signature(r), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    // MARK: - Awkward keys

    /// The URL path must be exactly what was signed, for every kind of key.
    func testAwkwardKeysEncodeConsistently() throws {
        let cases: [(key: String, path: String)] = [
            ("a b.txt", "a%20b.txt"),
            ("dir/sub dir/file", "dir/sub%20dir/file"),
            ("plus+sign", "plus%2Bsign"),
            ("100%", "100%25"),
            ("what?.txt", "what%3F.txt"),
            ("hash#tag", "hash%23tag"),
            ("a&b=c", "a%26b%3Dc"),
            ("tilde~ok", "tilde~ok"),
            ("it's", "it%27s"),
            ("Überß/日本語.bin", "%C3%9Cber%C3%9F/%E6%97%A5%E6%9C%AC%E8%AA%9E.bin"),
            ("emoji😀", "emoji%F0%9F%98%80"),
            ("semi;colon,comma:colon@at!bang*star(paren)$", "semi%3Bcolon%2Ccomma%3Acolon%40at%21bang%2Astar%28paren%29%24"),
            ("trailing/", "trailing/"),
            ("double//slash", "double//slash"),
            ("%2F-looks-encoded", "%252F-looks-encoded"),
            (" lead and trail ", "%20lead%20and%20trail%20"),
        ]
        let builders = [
            S3RequestBuilder(endpoint: try S3Endpoint(url: "http://localhost:8333", region: "us-east-1"),
                             credentials: Self.docCredentials),
            S3RequestBuilder(endpoint: try S3Endpoint(url: nil, region: "us-east-1"), credentials: Self.docCredentials),
        ]
        for b in builders {
            for c in cases {
                let r = b.getObject(bucket: "data", key: c.key, date: Self.docDate)
                let prefix = b.endpoint.usesVirtualHosting(bucket: "data") ? "/" : "/data/"
                let expectedPath = prefix + c.path
                XCTAssertEqual(r.url, "\(b.endpoint.scheme)://\(r.header("Host")!)\(expectedPath)", c.key)
                // Recompute the signature from the URL's own path: it must match.
                let signer = SigV4Signer(credentials: Self.docCredentials, region: "us-east-1")
                let headers = r.headers.filter { $0.name != "Authorization" }.map { ($0.name, $0.value) }
                let auth = signer.authorization(method: "GET", canonicalURI: expectedPath, query: [], headers: headers,
                                                payloadHash: SigV4Signer.emptyPayloadHash, date: Self.docDate)
                XCTAssertEqual(r.header("Authorization"), auth, c.key)
                // Only unreserved characters, '/', and %XX escapes may appear in the path.
                let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~/%")
                XCTAssertTrue(expectedPath.unicodeScalars.allSatisfy { allowed.contains($0) }, c.key)
            }
        }
    }

    /// The URL query must be byte-identical to the canonical query that was signed.
    func testQueryInURLMatchesCanonicalQuery() throws {
        let b = S3RequestBuilder(endpoint: try S3Endpoint(url: "http://127.0.0.1:9000", region: "us-east-1"),
                                 credentials: Self.docCredentials)
        let query = [("prefix", "a b+c/ü?&=#%"), ("delimiter", "/"), ("list-type", "2"), ("Zeta", "1"), ("alpha", "")]
        let r = b.request(method: "GET", bucket: "data", key: nil, query: query, date: Self.docDate)
        let urlQuery = String(r.url.split(separator: "?", maxSplits: 1)[1])
        XCTAssertEqual(urlQuery, SigV4Signer.canonicalQueryString(query))
        XCTAssertEqual(urlQuery, "Zeta=1&alpha=&delimiter=%2F&list-type=2&prefix=a%20b%2Bc%2F%C3%BC%3F%26%3D%23%25")
        let creq = SigV4Signer.canonicalRequest(method: "GET", canonicalURI: "/data", query: query,
                                                headers: r.headers.filter { $0.name != "Authorization" }
                                                    .map { ($0.name, $0.value) },
                                                payloadHash: SigV4Signer.emptyPayloadHash)
        XCTAssertEqual(creq.request.split(separator: "\n", omittingEmptySubsequences: false)[2], Substring(urlQuery))
    }

    func testBuilderIsCodableForWorkers() throws {
        var creds = Self.docCredentials
        creds.sessionToken = "tok"
        let b = S3RequestBuilder(endpoint: try S3Endpoint(url: "http://[::1]:9000", region: "garage", addressing: .path),
                                 credentials: creds)
        let back = try JSONDecoder().decode(S3RequestBuilder.self, from: JSONEncoder().encode(b))
        XCTAssertEqual(back.endpoint, b.endpoint)
        XCTAssertEqual(back.credentials, b.credentials)
        let r1 = b.getObject(bucket: "x", key: "y", date: Self.docDate)
        let r2 = back.getObject(bucket: "x", key: "y", date: Self.docDate)
        XCTAssertEqual(r1.url, "http://[::1]:9000/x/y")
        XCTAssertEqual(r1.url, r2.url)
        XCTAssertEqual(r1.header("Authorization"), r2.header("Authorization"))
        XCTAssertEqual(r1.header("Host"), "[::1]:9000")
    }
}
