/// Issue 19's "rest of the aws contract": the region chain (with IMDS on a stub), endpoint URL,
/// addressing and CA bundle from flags / environment / ~/.aws/config, --no-sign-request,
/// --request-payer, and a bucket found in another region (stub S3 on 127.0.0.1).
import Foundation
import XCTest
@testable import S3

final class RegionContractTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "soak-region-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Writes `text` as the config file and returns an environment naming it (IMDS off).
    func env(config: String, _ extra: [String: String] = [:]) throws -> [String: String] {
        try config.write(toFile: dir + "/config", atomically: true, encoding: .utf8)
        return ["AWS_CONFIG_FILE": dir + "/config", "AWS_EC2_METADATA_DISABLED": "true"].merging(extra) { $1 }
    }

    // MARK: - Region

    func testRegionOrder() throws {
        let e = try env(config: "[default]\nregion = eu-west-3\n[profile p]\nregion = ap-south-1\n")
        func r(_ flag: String?, _ extra: [String: String], profile: String? = nil) -> String {
            RegionResolver.resolve(flag: flag, environment: e.merging(extra) { $1 }, home: dir, profile: profile)
        }
        let both = ["AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-north-1"]
        XCTAssertEqual(r("sa-east-1", both), "sa-east-1")
        XCTAssertEqual(r(nil, both), "us-west-2")
        XCTAssertEqual(r(nil, ["AWS_DEFAULT_REGION": "eu-north-1"]), "eu-north-1")
        XCTAssertEqual(r(nil, [:]), "eu-west-3")
        XCTAssertEqual(r(nil, ["AWS_PROFILE": "p"]), "ap-south-1")
        // --profile beats AWS_PROFILE for the region too.
        XCTAssertEqual(r(nil, ["AWS_PROFILE": "p"], profile: "default"), "eu-west-3")
        XCTAssertEqual(r(nil, [:], profile: "p"), "ap-south-1")
        XCTAssertEqual(r(nil, [:], profile: "nosuch"), "us-east-1")
    }

    func testRegionFromInstanceMetadataWithAToken() throws {
        let stub = try StubHTTPServer { r in
            if r.method == "PUT" && r.path == "/latest/api/token" { return .text(200, "TOK") }
            if r.method == "GET" && r.path == "/latest/meta-data/placement/region" {
                return r.headers["x-aws-ec2-metadata-token"] == "TOK" ? .text(200, "eu-central-2\n") : .text(401, "")
            }
            return .text(404, "")
        }
        let base = ["AWS_EC2_METADATA_SERVICE_ENDPOINT": stub.url, "AWS_CONFIG_FILE": dir + "/none"]
        let found = RegionResolver.resolveWithSource(flag: nil, environment: base, home: dir)
        XCTAssertEqual(found.region, "eu-central-2")
        XCTAssertEqual(found.source, "EC2 instance metadata")
        XCTAssertEqual(stub.requests.map(\.method), ["PUT", "GET"])
        // Anything earlier in the chain wins without asking IMDS; disabled IMDS is never asked.
        XCTAssertEqual(RegionResolver.resolve(flag: nil, environment: base.merging(["AWS_REGION": "us-west-1"]) { $1 },
                                              home: dir), "us-west-1")
        XCTAssertEqual(RegionResolver.resolve(flag: nil, environment: base.merging(["AWS_EC2_METADATA_DISABLED": "true"]) { $1 },
                                              home: dir), "us-east-1")
        XCTAssertEqual(stub.requests.count, 2)
    }

    func testRegionFromInstanceMetadataFallsBackToV1OnlyWhenAllowed() throws {
        let stub = try StubHTTPServer { r in
            if r.method == "PUT" { return .text(405, "") }
            return r.path == "/latest/meta-data/placement/region" ? .text(200, "us-gov-west-1") : .text(404, "")
        }
        let base = ["AWS_EC2_METADATA_SERVICE_ENDPOINT": stub.url, "AWS_CONFIG_FILE": dir + "/none"]
        XCTAssertEqual(RegionResolver.resolve(flag: nil, environment: base, home: dir), "us-gov-west-1")
        XCTAssertEqual(RegionResolver.resolve(flag: nil, environment: base.merging(["AWS_EC2_METADATA_V1_DISABLED": "true"]) { $1 },
                                              home: dir), "us-east-1")
    }

    // MARK: - Endpoint, addressing, CA bundle

    func settings(_ e: [String: String], flag: String? = nil, addressing: String? = nil, ca: String? = nil,
                  profile: String? = nil) throws -> S3ClientSettings {
        try S3ClientSettings.resolve(endpointFlag: flag, addressingFlag: addressing, caBundleFlag: ca,
                                     environment: e, home: dir, profile: profile)
    }

    func testEndpointPrecedence() throws {
        let e = try env(config: """
            [default]
            endpoint_url = http://profile.example:1
            services = local
            [services local]
            s3 =
              endpoint_url = http://services.example:2
            sts =
              endpoint_url = http://sts.example:3
            [profile plain]
            endpoint_url = http://plain.example:4
            [profile ignoring]
            endpoint_url = http://plain.example:4
            ignore_configured_endpoint_urls = true
            """)
        let envURLs = ["AWS_ENDPOINT_URL_S3": "http://s3env.example:5", "AWS_ENDPOINT_URL": "http://allenv.example:6"]
        XCTAssertEqual(try settings(e.merging(envURLs) { $1 }, flag: "http://flag.example:7").endpointURL, "http://flag.example:7")
        XCTAssertEqual(try settings(e.merging(envURLs) { $1 }).endpointURL, "http://s3env.example:5")
        XCTAssertEqual(try settings(e.merging(["AWS_ENDPOINT_URL": "http://allenv.example:6"]) { $1 }).endpointURL,
                       "http://allenv.example:6")
        XCTAssertEqual(try settings(e).endpointURL, "http://services.example:2")
        XCTAssertEqual(try settings(e, profile: "plain").endpointURL, "http://plain.example:4")
        XCTAssertEqual(try settings(e.merging(["AWS_PROFILE": "plain"]) { $1 }).endpointURL, "http://plain.example:4")
        // Ignoring configured endpoints drops the environment and the file, never the flag.
        let ignore = e.merging(envURLs) { $1 }.merging(["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"]) { $1 }
        XCTAssertNil(try settings(ignore).endpointURL)
        XCTAssertEqual(try settings(ignore, flag: "http://flag.example:7").endpointURL, "http://flag.example:7")
        XCTAssertNil(try settings(e, profile: "ignoring").endpointURL)
    }

    func testAddressingStyleFromTheProfile() throws {
        let e = try env(config: "[default]\ns3 =\n  addressing_style = path\n[profile v]\ns3 =\n    addressing_style = virtual\n"
                        + "[profile bad]\ns3 =\n  addressing_style = sideways\n")
        XCTAssertEqual(try settings(e).addressing, .path)
        XCTAssertEqual(try settings(e, profile: "v").addressing, .virtual)
        XCTAssertEqual(try settings(e, addressing: "virtual").addressing, .virtual)
        XCTAssertEqual(try settings(e, profile: "nosuch").addressing, .auto)
        XCTAssertThrowsError(try settings(e, profile: "bad")) { XCTAssertTrue("\($0)".contains("addressing_style 'sideways'")) }
        XCTAssertThrowsError(try settings(e, addressing: "up"))
    }

    func testCABundleOrderAndAMissingFileIsOneLineUpFront() throws {
        for n in ["flag.pem", "env.pem", "profile.pem"] { FileManager.default.createFile(atPath: dir + "/" + n, contents: Data("x".utf8)) }
        let e = try env(config: "[default]\nca_bundle = \(dir)/profile.pem\n")
        XCTAssertEqual(try settings(e).caBundle, dir + "/profile.pem")
        let withEnv = e.merging(["AWS_CA_BUNDLE": dir + "/env.pem"]) { $1 }
        XCTAssertEqual(try settings(withEnv).caBundle, dir + "/env.pem")
        XCTAssertEqual(try settings(withEnv, ca: dir + "/flag.pem").caBundle, dir + "/flag.pem")
        XCTAssertNil(try settings(try env(config: "")).caBundle)
        XCTAssertThrowsError(try settings(e, ca: dir + "/missing.pem")) { error in
            XCTAssertTrue(error is S3EndpointError)
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"))
            XCTAssertTrue(text.contains("missing.pem") && text.contains("--ca-bundle") && text.contains("No such file"), text)
        }
        XCTAssertThrowsError(try settings(e, ca: dir)) { XCTAssertTrue("\($0)".contains("not a regular file")) }
    }

    // MARK: - Unsigned and requester-pays requests

    func testNoSignRequestSendsNoSignatureAndRequestPayerIsSigned() throws {
        let endpoint = try S3Endpoint(url: "http://127.0.0.1:9", region: "us-east-1")
        let anon = S3RequestBuilder.anonymous(endpoint: endpoint)
        let r = anon.getObject(bucket: "b", key: "k", range: 0...9)
        XCTAssertNil(r.header("Authorization"))
        XCTAssertNil(r.header("x-amz-date"))
        XCTAssertNil(r.header("x-amz-content-sha256"))
        XCTAssertEqual(r.header("Range"), "bytes=0-9")
        let creds = Credentials(accessKeyId: "AKID", secretAccessKey: "secret")
        let payer = S3RequestBuilder(endpoint: endpoint, credentials: creds, requestPayer: "requester")
        for req in [payer.listObjectsV2(bucket: "b", prefix: ""), payer.headObject(bucket: "b", key: "k"),
                    payer.getObject(bucket: "b", key: "k")] {
            XCTAssertEqual(req.header("x-amz-request-payer"), "requester")
            XCTAssertTrue(req.header("Authorization")?.contains("x-amz-request-payer") ?? false, req.header("Authorization") ?? "")
        }
        XCTAssertNil(S3RequestBuilder(endpoint: endpoint, credentials: creds).headObject(bucket: "b", key: "k")
            .header("x-amz-request-payer"))
    }

    // MARK: - A bucket in another region

    func testRedirectDecisions() {
        let moved = S3ErrorBody(code: "PermanentRedirect", message: "", region: "eu-west-1")
        XCTAssertEqual(BucketRegion.redirect(status: 301, headerRegion: "eu-west-1", body: nil, current: "us-east-1"), "eu-west-1")
        XCTAssertEqual(BucketRegion.redirect(status: 301, headerRegion: nil, body: moved, current: "us-east-1"), "eu-west-1")
        let malformed = S3ErrorBody(code: "AuthorizationHeaderMalformed", message: "", region: "ap-east-1")
        XCTAssertEqual(BucketRegion.redirect(status: 400, headerRegion: nil, body: malformed, current: "us-east-1"), "ap-east-1")
        XCTAssertNil(BucketRegion.redirect(status: 400, headerRegion: "x-1", body: nil, current: "us-east-1"))
        XCTAssertNil(BucketRegion.redirect(status: 403, headerRegion: "eu-west-1", body: nil, current: "us-east-1"))
        XCTAssertNil(BucketRegion.redirect(status: 200, headerRegion: "eu-west-1", body: nil, current: "us-east-1"))
        XCTAssertNil(BucketRegion.redirect(status: 301, headerRegion: "us-east-1", body: nil, current: "us-east-1"))
    }

    /// A stub S3 whose bucket lives in eu-west-1: a request signed for another region gets the
    /// answer `how` gives; a request signed for eu-west-1 gets a listing or an object.
    func s3Stub(_ how: @escaping @Sendable (StubHTTPServer.Request) -> StubHTTPServer.Response) throws -> StubHTTPServer {
        try StubHTTPServer { r in
            guard (r.headers["authorization"] ?? "").contains("/eu-west-1/s3/aws4_request") else { return how(r) }
            if r.method == "HEAD" { return StubHTTPServer.Response(status: 200, headers: [("x-amz-bucket-region", "eu-west-1")]) }
            if r.path.contains("list-type=2") {
                return .text(200, "<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated><Contents><Key>k</Key>"
                             + "<Size>3</Size><ETag>\"e\"</ETag></Contents></ListBucketResult>", type: "application/xml")
            }
            return StubHTTPServer.Response(status: 200, headers: [("ETag", "\"e\"")], body: Data("abc".utf8))
        }
    }

    func store(_ stub: StubHTTPServer) throws -> CurlObjectStore {
        let endpoint = try S3Endpoint(url: stub.url, region: "us-east-1", addressing: .path)
        return try CurlObjectStore(builder: S3RequestBuilder(endpoint: endpoint, credentials: Credentials(accessKeyId: "AKID", secretAccessKey: "s")),
                                   options: TransportOptions())
    }

    func testA301IsSignedAgainForTheBucketsRegionOnceThenUsedDirectly() throws {
        let stub = try s3Stub { _ in StubHTTPServer.Response(status: 301, headers: [("x-amz-bucket-region", "eu-west-1")],
                                                             body: Data("<Error><Code>PermanentRedirect</Code></Error>".utf8)) }
        let s = try store(stub)
        let page = try s.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 100)
        XCTAssertEqual(page.objects.map(\.key), ["k"])
        XCTAssertEqual(stub.requests.count, 2)
        XCTAssertEqual(s.currentBuilder.endpoint.region, "eu-west-1")
        XCTAssertEqual(s.currentBuilder.endpoint.urlString, stub.url)  // a custom endpoint keeps its host
        XCTAssertEqual(try s.head(bucket: "b", key: "k").key, "k")
        XCTAssertEqual(stub.requests.count, 3)  // no per-request cost afterwards
    }

    func testAuthorizationHeaderMalformedNamesTheRegionInItsBody() throws {
        let stub = try s3Stub { _ in .text(400, "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; "
                                                + "expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>", type: "application/xml") }
        let s = try store(stub)
        var got = Data()
        _ = try s.get(bucket: "b", key: "k", range: nil, ifMatch: nil) { got.append(contentsOf: $0) }
        XCTAssertEqual(got, Data("abc".utf8))
        XCTAssertEqual(stub.requests.count, 2)
    }

    func testAForbiddenAnswerDoesNotMoveTheClient() throws {
        let stub = try s3Stub { _ in StubHTTPServer.Response(status: 403, headers: [("x-amz-bucket-region", "eu-west-1")],
                                                             body: Data("<Error><Code>AccessDenied</Code></Error>".utf8)) }
        let s = try store(stub)
        XCTAssertThrowsError(try s.head(bucket: "b", key: "k"))
        XCTAssertEqual(stub.requests.count, 1)
        XCTAssertEqual(s.currentBuilder.endpoint.region, "us-east-1")
    }

    func testDiscoverRegionAsksOnceWithHeadBucket() throws {
        let stub = try s3Stub { _ in StubHTTPServer.Response(status: 301, headers: [("x-amz-bucket-region", "eu-west-1")]) }
        let s = try store(stub)
        // Custom endpoints are not probed unless asked (AWS endpoints always are).
        XCTAssertEqual(s.discoverRegion(bucket: "b").endpoint.region, "us-east-1")
        XCTAssertEqual(stub.requests.count, 0)
        XCTAssertEqual(s.discoverRegion(bucket: "b", evenForCustomEndpoint: true).endpoint.region, "eu-west-1")
        XCTAssertEqual(stub.requests.map(\.method), ["HEAD"])
        XCTAssertEqual(stub.requests.first?.path, "/b")
        _ = try s.listPage(bucket: "b", prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 10)
        XCTAssertEqual(stub.requests.count, 2)
    }

    func testAnAWSEndpointMovesToTheRegionsHost() throws {
        let b = S3RequestBuilder(endpoint: try S3Endpoint(url: nil, region: "us-east-1", addressing: .virtual),
                                 credentials: Credentials(accessKeyId: "A", secretAccessKey: "s"), requestPayer: "requester")
        let moved = try b.inRegion("eu-west-1")
        XCTAssertEqual(moved.endpoint.host, "s3.eu-west-1.amazonaws.com")
        XCTAssertEqual(moved.endpoint.addressing, .virtual)
        XCTAssertEqual(moved.requestPayer, "requester")
        XCTAssertThrowsError(try b.inRegion("bad/region"))
    }
}
