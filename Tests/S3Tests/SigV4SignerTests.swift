/// SigV4 against published AWS vectors, step by step.
///
/// Two sources, copied verbatim (expected values are never adjusted to fit the code):
/// - the AWS SigV4 test suite (`aws-sig-v4-test-suite`, as vendored in awslabs/aws-c-auth
///   `tests/aws-signing-test-suite/v4/<name>/header-*.txt`): service `service`, region
///   `us-east-1`, AKIDEXAMPLE, 2015-08-30T12:36:00Z. These sign only the headers the request
///   carries (`host`, `x-amz-date`...), so they go through `authorization(...)`, which adds
///   nothing.
/// - the S3 API reference "Signature Calculations for the Authorization Header" examples
///   (examplebucket, AKIAIOSFODNN7EXAMPLE, 2013-05-24T00:00:00Z), which go through `sign(...)`,
///   the path S3 requests take, since S3 requires `x-amz-content-sha256`.
import Foundation
import XCTest
@testable import S3

final class SigV4SignerTests: XCTestCase {
    // MARK: - Fixtures

    static let suiteCredentials = Credentials(accessKeyId: "AKIDEXAMPLE",
                                              secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160) // 2015-08-30T12:36:00Z
    static let suiteSigner = SigV4Signer(credentials: suiteCredentials, region: "us-east-1", service: "service")
    static let empty = SigV4Signer.emptyPayloadHash

    static let s3Credentials = Credentials(accessKeyId: "AKIAIOSFODNN7EXAMPLE",
                                           secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    static let s3Date = Date(timeIntervalSince1970: 1_369_353_600) // 2013-05-24T00:00:00Z
    static let s3Signer = SigV4Signer(credentials: s3Credentials, region: "us-east-1")

    struct SuiteVector {
        var name: String
        var method = "GET"
        /// The raw request path; encoded here with the signer's own path encoder.
        var path = "/"
        var query: [(String, String)] = []
        var headers: [(String, String)] = []
        var canonicalRequest: String
        var stringToSign: String
        var signature: String
        var signedHeaders = "host;x-amz-date"
    }

    /// Checks all three stages and the Authorization header of one suite vector.
    func check(_ v: SuiteVector, signer: SigV4Signer = suiteSigner, file: StaticString = #filePath, line: UInt = #line) {
        let headers = [("Host", "example.amazonaws.com")] + v.headers + [("X-Amz-Date", "20150830T123600Z")]
        let uri = SigV4Signer.uriEncode(v.path, encodeSlash: false)
        let creq = SigV4Signer.canonicalRequest(method: v.method, canonicalURI: uri, query: v.query,
                                                headers: headers, payloadHash: Self.empty)
        XCTAssertEqual(creq.request, v.canonicalRequest, "\(v.name): canonical request", file: file, line: line)
        XCTAssertEqual(creq.signedHeaders, v.signedHeaders, "\(v.name): signed headers", file: file, line: line)
        let sts = signer.stringToSign(canonicalRequest: creq.request, date: Self.suiteDate)
        XCTAssertEqual(sts, v.stringToSign, "\(v.name): string to sign", file: file, line: line)
        XCTAssertEqual(signer.signature(stringToSign: sts, date: Self.suiteDate), v.signature,
                       "\(v.name): signature", file: file, line: line)
        let auth = signer.authorization(method: v.method, canonicalURI: uri, query: v.query, headers: headers,
                                        payloadHash: Self.empty, date: Self.suiteDate)
        XCTAssertEqual(auth, "AWS4-HMAC-SHA256 Credential=\(signer.credentials.accessKeyId)/20150830/us-east-1/service/"
                       + "aws4_request, SignedHeaders=\(v.signedHeaders), Signature=\(v.signature)",
                       "\(v.name): Authorization", file: file, line: line)
    }

    // MARK: - AWS SigV4 test suite

    func testSuiteGetVanilla() {
        check(SuiteVector(
            name: "get-vanilla",
            canonicalRequest: """
                GET
                /

                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63
                """,
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"))
    }

    func testSuiteGetVanillaQueryOrderKeyCase() {
        check(SuiteVector(
            name: "get-vanilla-query-order-key-case",
            query: [("Param2", "value2"), ("Param1", "value1")],
            canonicalRequest: """
                GET
                /
                Param1=value1&Param2=value2
                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0
                """,
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"))
    }

    func testSuiteGetVanillaQueryOrderEncoded() {
        // Sorting happens on the *encoded* names: "%E1..." < "Param" < "Param-3".
        check(SuiteVector(
            name: "get-vanilla-query-order-encoded",
            query: [("Param-3", "Value3"), ("Param", "Value2"), ("\u{1234}", "Value1")],
            canonicalRequest: """
                GET
                /
                %E1%88%B4=Value1&Param=Value2&Param-3=Value3
                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                868294f5c38bd141c4972a373a76654f1418a8e4fc18b2e7903ae45e8ae0ec71
                """,
            signature: "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"))
    }

    func testSuiteGetVanillaEmptyQueryKey() {
        check(SuiteVector(
            name: "get-vanilla-empty-query-key",
            query: [("Param1", "value1")],
            canonicalRequest: """
                GET
                /
                Param1=value1
                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab
                """,
            signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"))
    }

    func testSuiteGetVanillaQueryUnreserved() {
        let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        check(SuiteVector(
            name: "get-vanilla-query-unreserved",
            query: [(unreserved, unreserved)],
            canonicalRequest: """
                GET
                /
                \(unreserved)=\(unreserved)
                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177
                """,
            signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"))
    }

    func testSuiteGetVanillaUTF8Query() {
        check(SuiteVector(
            name: "get-vanilla-utf8-query",
            query: [("\u{1234}", "bar")],
            canonicalRequest: """
                GET
                /
                %E1%88%B4=bar
                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073
                """,
            signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"))
    }

    func testSuiteGetUTF8Path() {
        check(SuiteVector(
            name: "get-utf8",
            path: "/\u{1234}",
            canonicalRequest: """
                GET
                /%E1%88%B4

                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102
                """,
            signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"))
    }

    func testSuiteGetUnreservedPath() {
        check(SuiteVector(
            name: "get-unreserved",
            path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            canonicalRequest: """
                GET
                /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz

                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9
                """,
            signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"))
    }

    func testSuiteGetSpaceUnnormalized() {
        check(SuiteVector(
            name: "get-space-unnormalized",
            path: "/example space/",
            canonicalRequest: """
                GET
                /example%20space/

                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86
                """,
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"))
    }

    func testSuiteGetHeaderValueTrim() {
        check(SuiteVector(
            name: "get-header-value-trim",
            headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
            canonicalRequest: """
                GET
                /

                host:example.amazonaws.com
                my-header1:value1
                my-header2:"a b c"
                x-amz-date:20150830T123600Z

                host;my-header1;my-header2;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7
                """,
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            signedHeaders: "host;my-header1;my-header2;x-amz-date"))
    }

    func testSuiteGetHeaderKeyDuplicate() {
        check(SuiteVector(
            name: "get-header-key-duplicate",
            headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
            canonicalRequest: """
                GET
                /

                host:example.amazonaws.com
                my-header1:value2,value2,value1
                x-amz-date:20150830T123600Z

                host;my-header1;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c
                """,
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
            signedHeaders: "host;my-header1;x-amz-date"))
    }

    func testSuiteGetVanillaWithSessionToken() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
        var creds = Self.suiteCredentials
        creds.sessionToken = token
        let signer = SigV4Signer(credentials: creds, region: "us-east-1", service: "service")
        check(SuiteVector(
            name: "get-vanilla-with-session-token",
            headers: [("X-Amz-Security-Token", token)],
            canonicalRequest: """
                GET
                /

                host:example.amazonaws.com
                x-amz-date:20150830T123600Z
                x-amz-security-token:\(token)

                host;x-amz-date;x-amz-security-token
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b
                """,
            signature: "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
            signedHeaders: "host;x-amz-date;x-amz-security-token"), signer: signer)
    }

    // MARK: - S3 documentation examples (through `sign`)

    struct S3Example {
        var method = "GET"
        var uri: String
        var query: [(String, String)] = []
        var extraHeaders: [(String, String)] = []
        var payloadHash = SigV4Signer.emptyPayloadHash
        var canonicalRequest: String?
        var stringToSign: String
        var signedHeaders: String
        var signature: String
    }

    func checkS3(_ e: S3Example, file: StaticString = #filePath, line: UInt = #line) {
        let signer = Self.s3Signer
        let headers = [("Host", "examplebucket.s3.amazonaws.com")] + e.extraHeaders
        let added = signer.sign(method: e.method, canonicalURI: e.uri, query: e.query, headers: headers,
                                payloadHash: e.payloadHash, date: Self.s3Date)
        let all = headers + added.filter { $0.0 != "Authorization" }
        let creq = SigV4Signer.canonicalRequest(method: e.method, canonicalURI: e.uri, query: e.query,
                                                headers: all, payloadHash: e.payloadHash)
        if let expected = e.canonicalRequest {
            XCTAssertEqual(creq.request, expected, "canonical request", file: file, line: line)
        }
        let sts = signer.stringToSign(canonicalRequest: creq.request, date: Self.s3Date)
        XCTAssertEqual(sts, e.stringToSign, "string to sign", file: file, line: line)
        let auth = added.first { $0.0 == "Authorization" }?.1
        XCTAssertEqual(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                       + "SignedHeaders=\(e.signedHeaders), Signature=\(e.signature)", file: file, line: line)
        XCTAssertEqual(added.first { $0.0 == "x-amz-date" }?.1, "20130524T000000Z", file: file, line: line)
        XCTAssertEqual(added.first { $0.0 == "x-amz-content-sha256" }?.1, e.payloadHash, file: file, line: line)
        XCTAssertNil(added.first { $0.0 == "x-amz-security-token" }, file: file, line: line)
    }

    func testS3GetObjectExample() {
        checkS3(S3Example(
            uri: "/test.txt",
            extraHeaders: [("Range", "bytes=0-9")],
            canonicalRequest: """
                GET
                /test.txt

                host:examplebucket.s3.amazonaws.com
                range:bytes=0-9
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;range;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20130524T000000Z
                20130524/us-east-1/s3/aws4_request
                7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
                """,
            signedHeaders: "host;range;x-amz-content-sha256;x-amz-date",
            signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
    }

    func testS3ListObjectsExample() {
        checkS3(S3Example(
            uri: "/",
            query: [("prefix", "J"), ("max-keys", "2")],
            canonicalRequest: """
                GET
                /
                max-keys=2&prefix=J
                host:examplebucket.s3.amazonaws.com
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20130524T000000Z
                20130524/us-east-1/s3/aws4_request
                df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7
                """,
            signedHeaders: "host;x-amz-content-sha256;x-amz-date",
            signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"))
    }

    func testS3GetBucketLifecycleExample() {
        checkS3(S3Example(
            uri: "/",
            query: [("lifecycle", "")],
            canonicalRequest: """
                GET
                /
                lifecycle=
                host:examplebucket.s3.amazonaws.com
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20130524T000000Z
                20130524/us-east-1/s3/aws4_request
                9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca
                """,
            signedHeaders: "host;x-amz-content-sha256;x-amz-date",
            signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"))
    }

    func testS3PutObjectExample() {
        // "test$file.text": the `$` must be encoded in the path.
        checkS3(S3Example(
            method: "PUT",
            uri: SigV4Signer.uriEncode("/test$file.text", encodeSlash: false),
            extraHeaders: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
            canonicalRequest: """
                PUT
                /test%24file.text

                date:Fri, 24 May 2013 00:00:00 GMT
                host:examplebucket.s3.amazonaws.com
                x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
                x-amz-date:20130524T000000Z
                x-amz-storage-class:REDUCED_REDUNDANCY

                date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class
                44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
                """,
            stringToSign: """
                AWS4-HMAC-SHA256
                20130524T000000Z
                20130524/us-east-1/s3/aws4_request
                9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d
                """,
            signedHeaders: "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"))
    }

    // MARK: - sign() behaviour

    func testSignAddsSessionTokenAndSignsIt() {
        var creds = Self.s3Credentials
        creds.sessionToken = "TOKEN/with+chars=="
        let signer = SigV4Signer(credentials: creds, region: "us-east-1")
        let added = signer.sign(method: "GET", canonicalURI: "/k", query: [],
                                headers: [("Host", "b.s3.amazonaws.com")],
                                payloadHash: SigV4Signer.emptyPayloadHash, date: Self.s3Date)
        XCTAssertEqual(added.map(\.0), ["Authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"])
        XCTAssertEqual(added.last?.1, "TOKEN/with+chars==")
        let auth = added[0].1
        XCTAssertTrue(auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"), auth)
        // The token changes the signature.
        let plain = Self.s3Signer.sign(method: "GET", canonicalURI: "/k", query: [],
                                       headers: [("Host", "b.s3.amazonaws.com")],
                                       payloadHash: SigV4Signer.emptyPayloadHash, date: Self.s3Date)
        XCTAssertNotEqual(plain[0].1, auth)
        XCTAssertEqual(plain.count, 3)
    }

    func testSignReplacesCallerSigningHeaders() {
        let headers = [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
                       ("X-Amz-Date", "19990101T000000Z"), ("x-amz-content-sha256", "bogus"),
                       ("Authorization", "stale")]
        let added = Self.s3Signer.sign(method: "GET", canonicalURI: "/test.txt", query: [], headers: headers,
                                       payloadHash: SigV4Signer.emptyPayloadHash, date: Self.s3Date)
        // Same as the documented GET Object example: stale values were dropped, not signed.
        XCTAssertTrue(added[0].1.hasSuffix("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
    }

    func testSignIsCaseInsensitiveOnHeaderNamesAndMethod() {
        let a = Self.s3Signer.sign(method: "get", canonicalURI: "/test.txt", query: [],
                                   headers: [("HOST", "examplebucket.s3.amazonaws.com"), ("rAnGe", "  bytes=0-9  ")],
                                   payloadHash: SigV4Signer.emptyPayloadHash, date: Self.s3Date)
        XCTAssertTrue(a[0].1.hasSuffix("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
    }

    func testSigningKeyDerivation() {
        // The AWS documentation's "derive a signing key" example (iam, us-east-1, 20150830).
        let signer = SigV4Signer(credentials: Self.suiteCredentials, region: "us-east-1", service: "iam")
        let key = signer.signingKey(date: Self.suiteDate).withUnsafeBytes { Array($0) }
        XCTAssertEqual(SigV4Signer.hex(key), "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
    }

    func testDateFormatting() {
        XCTAssertEqual(UTCTime.amzDate(Self.suiteDate), "20150830T123600Z")
        XCTAssertEqual(UTCTime.dateStamp(Self.suiteDate), "20150830")
        XCTAssertEqual(UTCTime.amzDate(Date(timeIntervalSince1970: 0)), "19700101T000000Z")
        XCTAssertEqual(UTCTime.amzDate(Date(timeIntervalSince1970: 951_782_399.9)), "20000228T235959Z")
        XCTAssertEqual(UTCTime.amzDate(Date(timeIntervalSince1970: 951_782_400)), "20000229T000000Z") // leap day
        XCTAssertEqual(UTCTime.amzDate(Date(timeIntervalSince1970: 4_102_444_800)), "21000101T000000Z")
        XCTAssertEqual(UTCTime.amzDate(Date(timeIntervalSince1970: -1)), "19691231T235959Z")
        XCTAssertEqual(SigV4SignerTests.s3Signer.scope(Self.s3Date), "20130524/us-east-1/s3/aws4_request")
    }

    // MARK: - Canonicalisation edge cases

    func testURIEncode() {
        XCTAssertEqual(SigV4Signer.uriEncode("AZaz09-_.~", encodeSlash: true), "AZaz09-_.~")
        XCTAssertEqual(SigV4Signer.uriEncode("a b", encodeSlash: true), "a%20b")
        XCTAssertEqual(SigV4Signer.uriEncode("a/b", encodeSlash: true), "a%2Fb")
        XCTAssertEqual(SigV4Signer.uriEncode("a/b", encodeSlash: false), "a/b")
        XCTAssertEqual(SigV4Signer.uriEncode("+%?#&='!*()$,;:@[]\"<>\\^`{|}", encodeSlash: false),
                       "%2B%25%3F%23%26%3D%27%21%2A%28%29%24%2C%3B%3A%40%5B%5D%22%3C%3E%5C%5E%60%7B%7C%7D")
        XCTAssertEqual(SigV4Signer.uriEncode("ü", encodeSlash: false), "%C3%BC")
        XCTAssertEqual(SigV4Signer.uriEncode("日本", encodeSlash: false), "%E6%97%A5%E6%9C%AC")
        XCTAssertEqual(SigV4Signer.uriEncode("😀", encodeSlash: false), "%F0%9F%98%80")
        XCTAssertEqual(SigV4Signer.uriEncode("\u{0}\t\n\u{7F}", encodeSlash: false), "%00%09%0A%7F")
        // Precomposed and decomposed forms are different bytes and stay different.
        XCTAssertEqual(SigV4Signer.uriEncode("e\u{301}", encodeSlash: false), "e%CC%81")
        XCTAssertEqual(SigV4Signer.uriEncode("", encodeSlash: false), "")
    }

    func testCanonicalQuerySortsByEncodedBytesThenValue() {
        XCTAssertEqual(SigV4Signer.canonicalQueryString([]), "")
        // Uppercase sorts before lowercase (byte order), then by value for equal keys.
        XCTAssertEqual(SigV4Signer.canonicalQueryString([("b", "2"), ("a", "z"), ("B", "1"), ("a", "y"), ("a", "")]),
                       "B=1&a=&a=y&a=z&b=2")
        // Keys and values are encoded before sorting and in the output; no form-encoding of spaces.
        XCTAssertEqual(SigV4Signer.canonicalQueryString([("prefix", "a b/c+d"), ("delimiter", "/")]),
                       "delimiter=%2F&prefix=a%20b%2Fc%2Bd")
        XCTAssertEqual(SigV4Signer.canonicalQueryString([("continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")]),
                       "continuation-token=1ueGcxLPRx1Tr%2FXYExHnhbYLgveDs2J%2Fwm36Hy4vbOwM%3D")
        // "%" (0x25) sorts before letters once encoded.
        XCTAssertEqual(SigV4Signer.canonicalQueryString([("a", "1"), ("~", "2"), ("ä", "3")]), "%C3%A4=3&a=1&~=2")
    }

    func testCanonicalHeaders() {
        let h = SigV4Signer.canonicalHeaders([("X-Amz-Meta-B", "  two   spaces  "), ("Host", "h"),
                                              ("x-amz-meta-a", "tab\there"), ("Content-Type", "a\n  b")])
        XCTAssertEqual(h.signedHeaders, "content-type;host;x-amz-meta-a;x-amz-meta-b")
        XCTAssertEqual(h.canonical, "content-type:a b\nhost:h\nx-amz-meta-a:tab here\nx-amz-meta-b:two spaces\n")
        XCTAssertEqual(SigV4Signer.canonicalHeaderValue(""), "")
        XCTAssertEqual(SigV4Signer.canonicalHeaderValue("   "), "")
        XCTAssertEqual(SigV4Signer.canonicalHeaderValue("\"a   b\""), "\"a b\"")
        // A repeated name keeps its values in the order given; a non-ASCII name is lowercased
        // like String.lowercased() (the byte path only handles ASCII itself).
        let r = SigV4Signer.canonicalHeaders([("X-B", "2"), ("x-a", " 1 "), ("x-b", "1"), ("X-Ä", "u")])
        XCTAssertEqual(r.canonical, "x-a:1\nx-b:2,1\nx-ä:u\n")
        XCTAssertEqual(r.signedHeaders, "x-a;x-b;x-ä")
    }

    func testEmptyCanonicalURIBecomesSlash() {
        let c = SigV4Signer.canonicalRequest(method: "GET", canonicalURI: "", query: [], headers: [("host", "h")],
                                             payloadHash: "UNSIGNED-PAYLOAD")
        XCTAssertEqual(c.request, "GET\n/\n\nhost:h\n\nhost\nUNSIGNED-PAYLOAD")
    }

    func testSHA256() {
        XCTAssertEqual(SigV4Signer.sha256Hex(""), SigV4Signer.emptyPayloadHash)
        XCTAssertEqual(SigV4Signer.sha256Hex("Welcome to Amazon S3."),
                       "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
    }
}
