/// STS `AssumeRole` and `AssumeRoleWithWebIdentity` against a stub that answers as STS does
/// (query-protocol form bodies in, STS XML out) and checks AssumeRole's SigV4 signature with
/// the source's secret. Profiles with role_arn: chains, cycles, credential_source.
import Foundation
import XCTest
@testable import S3

final class STSCredentialTests: XCTestCase {
    var home = ""

    override func setUpWithError() throws {
        home = FileManager.default.temporaryDirectory.appendingPathComponent("soak-sts-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: home + "/.aws", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: home) }

    func write(_ relative: String, _ text: String) throws {
        try text.write(toFile: home + "/" + relative, atomically: true, encoding: .utf8)
    }

    static func success(_ action: String, key: String) -> String {
        """
        <\(action)Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <\(action)Result>
            <AssumedRoleUser>
              <AssumedRoleId>AROA3XFRBF535PLBIFPI4:s3-access-example</AssumedRoleId>
              <Arn>arn:aws:sts::123456789012:assumed-role/xaccounts3access/s3-access-example</Arn>
            </AssumedRoleUser>
            <Credentials>
              <SecretAccessKey>secret-of-\(key)</SecretAccessKey>
              <SessionToken>token-of-\(key)</SessionToken>
              <Expiration>2030-01-01T01:00:00Z</Expiration>
              <AccessKeyId>\(key)</AccessKeyId>
            </Credentials>
            <PackedPolicySize>6</PackedPolicySize>
          </\(action)Result>
          <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
        </\(action)Response>
        """
    }

    static let accessDenied = """
        <ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <Error>
            <Type>Sender</Type>
            <Code>AccessDenied</Code>
            <Message>User: arn:aws:iam::123456789012:user/x is not authorized to perform: sts:AssumeRole</Message>
          </Error>
          <RequestId>4f8b2c1e-0000-4000-8000-000000000000</RequestId>
        </ErrorResponse>
        """

    /// Known key id → secret, for checking signatures (sources and issued keys).
    static let secrets = ["AKIDSOURCE": "source-secret", "ASIAROLEB": "secret-of-ASIAROLEB",
                          "AKIDENV": "env-secret", "AKIDSELF": "self-secret"]

    /// Recomputes the request's SigV4 signature with the key's known secret.
    static func signatureValid(_ r: StubHTTPServer.Request) -> Bool {
        guard let auth = r.headers["authorization"], let date = r.headers["x-amz-date"],
              let cred = auth.range(of: "Credential=")
        else { return false }
        let parts = auth[cred.upperBound...].split(separator: "/")
        let key = String(parts[0]), region = String(parts[2])
        guard let secret = secrets[key], parts[3] == "sts" else { return false }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX"); f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        guard let d = f.date(from: date) else { return false }
        var creds = Credentials(accessKeyId: key, secretAccessKey: secret)
        creds.sessionToken = r.headers["x-amz-security-token"]
        let signer = SigV4Signer(credentials: creds, region: region, service: "sts")
        var headers: [(String, String)] = [("host", r.headers["host"] ?? ""), ("content-type", r.headers["content-type"] ?? ""),
                                           ("x-amz-date", date), ("x-amz-content-sha256", r.headers["x-amz-content-sha256"] ?? "")]
        if let t = r.headers["x-amz-security-token"] { headers.append(("x-amz-security-token", t)) }
        let path = String(r.path.prefix { $0 != "?" })
        let expected = signer.authorization(method: r.method, canonicalURI: path, query: [], headers: headers,
                                            payloadHash: SigV4Signer.sha256Hex(r.body), date: d)
        return expected == auth && r.headers["x-amz-content-sha256"] == SigV4Signer.sha256Hex(r.body)
    }

    /// An STS stub: AssumeRole issues `ASIAROLE<last letter of the role name>` when the signature
    /// is good; AssumeRoleWithWebIdentity issues ASIAWEB for the token `good-token`.
    func sts() throws -> StubHTTPServer {
        try StubHTTPServer { r in
            let form = r.form
            switch form["Action"] {
            case "AssumeRole":
                guard Self.signatureValid(r), form["Version"] == "2011-06-15" else {
                    return .text(403, Self.accessDenied, type: "text/xml")
                }
                if form["RoleArn"]?.hasSuffix("denied") == true { return .text(403, Self.accessDenied, type: "text/xml") }
                let key = "ASIAROLE" + String(form["RoleArn"]?.last ?? "?")
                return .text(200, Self.success("AssumeRole", key: key), type: "text/xml")
            case "AssumeRoleWithWebIdentity":
                guard r.headers["authorization"] == nil, form["WebIdentityToken"] == "good-token" else {
                    return .text(400, Self.accessDenied.replacingOccurrences(of: "AccessDenied", with: "InvalidIdentityToken"),
                                 type: "text/xml")
                }
                return .text(200, Self.success("AssumeRoleWithWebIdentity", key: "ASIAWEB"), type: "text/xml")
            default:
                return .text(400, "")
            }
        }
    }

    func env(_ stub: StubHTTPServer, _ extra: [String: String] = [:]) -> [String: String] {
        ["AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_STS": stub.url].merging(extra) { $1 }
    }

    func chain(_ env: [String: String], profile: String? = nil) throws -> (Credentials, String) {
        let r = try DefaultCredentialChain.make(context: CredentialContext(environment: env, home: home, region: "eu-west-1"),
                                                explicitProfile: profile).resolve()
        return (r.credentials, r.provider.name)
    }

    // MARK: - Web identity

    func testWebIdentityFromEnvironmentRereadsTheToken() throws {
        let stub = try sts()
        try write("token", "good-token\n")
        let e = env(stub, ["AWS_WEB_IDENTITY_TOKEN_FILE": home + "/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/web",
                           "AWS_ROLE_SESSION_NAME": "pod-1"])
        let (c, source) = try chain(e)
        XCTAssertEqual(c.accessKeyId, "ASIAWEB")
        XCTAssertEqual(c.sessionToken, "token-of-ASIAWEB")
        XCTAssertEqual(c.expiration, Date(timeIntervalSince1970: 1_893_459_600))
        XCTAssertTrue(source.contains("web identity"), source)
        let form = try XCTUnwrap(stub.requests.first).form
        XCTAssertEqual(form["RoleArn"], "arn:aws:iam::1:role/web")
        XCTAssertEqual(form["RoleSessionName"], "pod-1")
        // The kubelet rotated the token: the next load sends the new one (and STS refuses it here).
        try write("token", "rotated-token")
        XCTAssertThrowsError(try chain(e)) { err in
            XCTAssertTrue("\(err)".contains("InvalidIdentityToken"), "\(err)")
            XCTAssertFalse("\(err)".contains("rotated-token"))
        }
        XCTAssertEqual(stub.requests.last?.form["WebIdentityToken"], "rotated-token")
    }

    func testWebIdentityWithoutRoleOrTokenFile() throws {
        let stub = try sts()
        XCTAssertThrowsError(try chain(env(stub, ["AWS_WEB_IDENTITY_TOKEN_FILE": home + "/token"]))) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .invalidConfig)
        }
        XCTAssertThrowsError(try chain(env(stub, ["AWS_WEB_IDENTITY_TOKEN_FILE": home + "/missing",
                                                  "AWS_ROLE_ARN": "arn:aws:iam::1:role/web"]))) { e in
            XCTAssertTrue("\(e)".contains("no such file"), "\(e)")
        }
        XCTAssertEqual(stub.requests.count, 0)
    }

    // MARK: - AssumeRole from profiles

    func testRoleFromSourceProfileIsSignedWithItsKeys() throws {
        let stub = try sts()
        try write(".aws/credentials", "[base]\naws_access_key_id = AKIDSOURCE\naws_secret_access_key = source-secret\n")
        try write(".aws/config", """
            [profile ml]
            role_arn = arn:aws:iam::123456789012:role/roleA
            source_profile = base
            external_id = ext-123
            role_session_name = soak-test
            duration_seconds = 1800
            """)
        let (c, source) = try chain(env(stub, ["AWS_PROFILE": "ml"]))
        XCTAssertEqual(c.accessKeyId, "ASIAROLEA")
        XCTAssertEqual(source, "profile 'ml'")
        let r = try XCTUnwrap(stub.requests.first)
        XCTAssertTrue(r.headers["authorization"]?.contains("Credential=AKIDSOURCE/") == true)
        XCTAssertTrue(r.headers["authorization"]?.contains("/eu-west-1/sts/aws4_request") == true)
        XCTAssertEqual(r.form["ExternalId"], "ext-123")
        XCTAssertEqual(r.form["RoleSessionName"], "soak-test")
        XCTAssertEqual(r.form["DurationSeconds"], "1800")
    }

    /// An STS endpoint URL with a path (a proxy or a private gateway): the request goes to that
    /// path and is signed for it.
    func testEndpointWithAPathIsSignedForThatPath() throws {
        let stub = try sts()
        try write(".aws/credentials", "[base]\naws_access_key_id = AKIDSOURCE\naws_secret_access_key = source-secret\n")
        try write(".aws/config", "[profile ml]\nrole_arn = arn:aws:iam::123456789012:role/roleP\nsource_profile = base\n")
        let (c, _) = try chain(env(stub, ["AWS_PROFILE": "ml", "AWS_ENDPOINT_URL_STS": stub.url + "/gateway/sts"]))
        XCTAssertEqual(c.accessKeyId, "ASIAROLEP")
        XCTAssertEqual(stub.requests.first?.path, "/gateway/sts/")
    }

    func testChainedRolesAndSelfReference() throws {
        let stub = try sts()
        try write(".aws/config", """
            [profile a]
            role_arn = arn:aws:iam::1:role/roleA
            source_profile = b
            [profile b]
            role_arn = arn:aws:iam::1:role/roleB
            source_profile = c
            [profile c]
            aws_access_key_id = AKIDSOURCE
            aws_secret_access_key = source-secret
            [profile self]
            role_arn = arn:aws:iam::1:role/roleS
            source_profile = self
            aws_access_key_id = AKIDSELF
            aws_secret_access_key = self-secret
            """)
        XCTAssertEqual(try chain(env(stub), profile: "a").0.accessKeyId, "ASIAROLEA")
        // b's role was assumed with c's keys, then a's with b's temporary keys (and token).
        let reqs = stub.requests
        XCTAssertEqual(reqs.map { $0.form["RoleArn"] ?? "" }, ["arn:aws:iam::1:role/roleB", "arn:aws:iam::1:role/roleA"])
        XCTAssertEqual(reqs[1].headers["x-amz-security-token"], "token-of-ASIAROLEB")
        XCTAssertEqual(try chain(env(stub), profile: "self").0.accessKeyId, "ASIAROLES")
    }

    func testSourceProfileCycleIsAnErrorWithoutNetwork() throws {
        let stub = try sts()
        try write(".aws/config", """
            [profile a]
            role_arn = arn:aws:iam::1:role/roleA
            source_profile = b
            [profile b]
            role_arn = arn:aws:iam::1:role/roleB
            source_profile = a
            [profile lonely]
            role_arn = arn:aws:iam::1:role/roleL
            source_profile = nowhere
            [profile both]
            role_arn = arn:aws:iam::1:role/roleX
            source_profile = a
            credential_source = Environment
            """)
        XCTAssertThrowsError(try chain(env(stub), profile: "a")) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .invalidConfig)
            XCTAssertTrue("\(e)".contains("'a' -> 'b' -> 'a'"), "\(e)")
        }
        XCTAssertThrowsError(try chain(env(stub), profile: "lonely")) { e in
            XCTAssertTrue("\(e)".contains("'nowhere'"), "\(e)")
        }
        XCTAssertThrowsError(try chain(env(stub), profile: "both")) { e in
            XCTAssertTrue("\(e)".contains("both source_profile and credential_source"), "\(e)")
        }
        XCTAssertEqual(stub.requests.count, 0)
    }

    func testCredentialSourceEnvironmentAndSTSErrors() throws {
        let stub = try sts()
        try write(".aws/config", """
            [default]
            role_arn = arn:aws:iam::1:role/roleE
            credential_source = Environment
            [profile denied]
            role_arn = arn:aws:iam::1:role/denied
            credential_source = Environment
            """)
        let keys = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"]
        XCTAssertEqual(try chain(env(stub, keys), profile: "default").0.accessKeyId, "ASIAROLEE")
        XCTAssertThrowsError(try chain(env(stub, keys), profile: "denied")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("profile 'denied'") && text.contains("HTTP 403")
                          && text.contains("AccessDenied: User: arn:aws:iam::123456789012:user/x"), text)
            XCTAssertFalse(text.contains("env-secret") || text.contains("\n"))
        }
        XCTAssertThrowsError(try chain(env(stub), profile: "default")) { e in  // no keys in the environment
            XCTAssertTrue("\(e)".contains("credential_source Environment"), "\(e)")
        }
    }

    func testProfileRoleComesBeforeEnvironmentWebIdentity() throws {
        let stub = try sts()
        try write("token", "good-token")
        try write(".aws/credentials", "[default]\naws_access_key_id = AKIDSOURCE\naws_secret_access_key = source-secret\n"
                  + "[roled]\nrole_arn = arn:aws:iam::1:role/roleR\nsource_profile = default\n")
        let web = ["AWS_WEB_IDENTITY_TOKEN_FILE": home + "/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/web"]
        XCTAssertEqual(try chain(env(stub, web.merging(["AWS_PROFILE": "roled"]) { $1 })).0.accessKeyId, "ASIAROLER")
        // Without a role in the profile, web identity beats the profile's static keys (botocore's order).
        XCTAssertEqual(try chain(env(stub, web)).0.accessKeyId, "ASIAWEB")
    }

    // MARK: - Endpoint

    func testSTSEndpointChoice() {
        func endpoint(_ env: [String: String], _ region: String?) -> String {
            STSClient(context: CredentialContext(environment: env, home: home, region: region)).endpoint().url
        }
        XCTAssertEqual(endpoint([:], nil), "https://sts.amazonaws.com")
        XCTAssertEqual(endpoint([:], "eu-west-1"), "https://sts.eu-west-1.amazonaws.com")
        XCTAssertEqual(endpoint([:], "cn-north-1"), "https://sts.cn-north-1.amazonaws.com.cn")
        XCTAssertEqual(endpoint(["AWS_STS_REGIONAL_ENDPOINTS": "legacy"], "eu-west-1"), "https://sts.amazonaws.com")
        XCTAssertEqual(endpoint(["AWS_ENDPOINT_URL": "http://all:1"], "eu-west-1"), "http://all:1")
        XCTAssertEqual(endpoint(["AWS_ENDPOINT_URL": "http://all:1", "AWS_ENDPOINT_URL_STS": "http://sts:2/"], nil), "http://sts:2")
        XCTAssertEqual(STSClient(context: CredentialContext(environment: [:], home: home)).endpoint().signingRegion, "us-east-1")
    }
}
