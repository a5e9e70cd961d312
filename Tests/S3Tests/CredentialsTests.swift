/// Credential and region resolution against fake environments and temporary `~/.aws` files.
///
/// Every test gets its own temporary home directory, so the real environment and the real
/// `~/.aws` of whoever runs the tests are never consulted.
import Foundation
import XCTest
@testable import S3

final class CredentialsTests: XCTestCase {
    var home: String = ""

    override func setUpWithError() throws {
        home = FileManager.default.temporaryDirectory
            .appendingPathComponent("soak-s3-creds-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: home + "/.aws", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: home)
    }

    /// Every test keeps the real instance-metadata service (which may answer on this VM) out.
    func noIMDS(_ env: [String: String]) -> [String: String] {
        env.merging(["AWS_EC2_METADATA_DISABLED": "true"]) { a, _ in a }
    }

    func write(_ relative: String, _ text: String) throws {
        let path = relative.hasPrefix("/") ? relative : home + "/" + relative
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static let credentialsFile = """
        # a comment
        ; another comment
        [default]
        aws_access_key_id = AKIDDEFAULT
        aws_secret_access_key = secretDEFAULT

        [dev]
        AWS_Access_Key_ID=AKIDDEV
        aws_secret_access_key   =   secretDEV   ; inline comment
        aws_session_token = tokenDEV

        [profile notthis]
        aws_access_key_id = WRONG
        aws_secret_access_key = WRONG
        """

    static let configFile = """
        [default]
        region = eu-west-1

        [profile cfgonly]
        region = ap-south-1
        aws_access_key_id = AKIDCFG
        aws_secret_access_key = secretCFG
        s3 =
          addressing_style = path
          region = nested-should-not-count

        [profile rolebased]
        role_arn = arn:aws:iam::123456789012:role/x
        source_profile = default
        """

    // MARK: - Chain order

    func testEnvironmentBeatsFiles() throws {
        try write(".aws/credentials", Self.credentialsFile)
        let env = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "secretENV", "AWS_SESSION_TOKEN": "tokENV",
                   "AWS_PROFILE": "dev"]
        let r = try Credentials.resolveWithSource(environment: noIMDS(env), home: home)
        XCTAssertEqual(r.credentials, Credentials(accessKeyId: "AKIDENV", secretAccessKey: "secretENV", sessionToken: "tokENV"))
        XCTAssertEqual(r.source, "environment")
    }

    func testEnvironmentWithoutToken() throws {
        let c = try Credentials.resolve(environment: ["AWS_ACCESS_KEY_ID": " AKID ", "AWS_SECRET_ACCESS_KEY": "s",
                                                      "AWS_SESSION_TOKEN": ""], home: home)
        XCTAssertEqual(c, Credentials(accessKeyId: "AKID", secretAccessKey: "s", sessionToken: nil))
    }

    func testHalfAnEnvironmentPairIsAnError() {
        XCTAssertThrowsError(try Credentials.resolve(environment: noIMDS(["AWS_ACCESS_KEY_ID": "AKID"]), home: home)) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .incomplete)
            XCTAssertTrue("\(e)".contains("AWS_SECRET_ACCESS_KEY"), "\(e)")
        }
        XCTAssertThrowsError(try Credentials.resolve(environment: noIMDS(["AWS_SECRET_ACCESS_KEY": "sekrit"]), home: home)) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .incomplete)
            XCTAssertFalse("\(e)".contains("sekrit"))
        }
    }

    func testDefaultProfileFromCredentialsFile() throws {
        try write(".aws/credentials", Self.credentialsFile)
        let r = try Credentials.resolveWithSource(environment: noIMDS([:]), home: home)
        XCTAssertEqual(r.credentials, Credentials(accessKeyId: "AKIDDEFAULT", secretAccessKey: "secretDEFAULT"))
        XCTAssertEqual(r.source, "profile 'default'")
    }

    func testProfileSelectionAndCaseInsensitiveKeysAndInlineComment() throws {
        try write(".aws/credentials", Self.credentialsFile)
        let c = try Credentials.resolve(environment: noIMDS(["AWS_PROFILE": "dev"]), home: home)
        XCTAssertEqual(c, Credentials(accessKeyId: "AKIDDEV", secretAccessKey: "secretDEV", sessionToken: "tokenDEV"))
    }

    func testAWSProfileBeatsAWSDefaultProfile() throws {
        try write(".aws/credentials", Self.credentialsFile)
        let c = try Credentials.resolve(environment: noIMDS(["AWS_PROFILE": "dev", "AWS_DEFAULT_PROFILE": "default"]), home: home)
        XCTAssertEqual(c.accessKeyId, "AKIDDEV")
        let d = try Credentials.resolve(environment: noIMDS(["AWS_DEFAULT_PROFILE": "dev"]), home: home)
        XCTAssertEqual(d.accessKeyId, "AKIDDEV")
    }

    func testCredentialsFileDoesNotUseProfilePrefix() throws {
        // "[profile notthis]" in the credentials file is a profile literally named "profile notthis".
        try write(".aws/credentials", Self.credentialsFile)
        XCTAssertThrowsError(try Credentials.resolve(environment: noIMDS(["AWS_PROFILE": "notthis"]), home: home)) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .profileNotFound)
        }
    }

    func testConfigFileProfileWithPrefix() throws {
        try write(".aws/config", Self.configFile)
        let r = try Credentials.resolveWithSource(environment: noIMDS(["AWS_PROFILE": "cfgonly"]), home: home)
        XCTAssertEqual(r.credentials, Credentials(accessKeyId: "AKIDCFG", secretAccessKey: "secretCFG"))
        XCTAssertEqual(r.source, "profile 'cfgonly'")
    }

    func testCredentialsFileBeatsConfigFile() throws {
        try write(".aws/credentials", "[cfgonly]\naws_access_key_id=FROMCREDS\naws_secret_access_key=s\n")
        try write(".aws/config", Self.configFile)
        let c = try Credentials.resolve(environment: noIMDS(["AWS_PROFILE": "cfgonly"]), home: home)
        XCTAssertEqual(c.accessKeyId, "FROMCREDS")
    }

    func testCustomFileLocationsAndTilde() throws {
        try write("elsewhere/creds", "[default]\naws_access_key_id=AKIDX\naws_secret_access_key=sx\n")
        try write(".aws/credentials", Self.credentialsFile)
        let c = try Credentials.resolve(environment: noIMDS(["AWS_SHARED_CREDENTIALS_FILE": "~/elsewhere/creds"]), home: home)
        XCTAssertEqual(c.accessKeyId, "AKIDX")

        try write("cfg/config", "[profile p]\naws_access_key_id=AKIDP\naws_secret_access_key=sp\n")
        let p = try Credentials.resolve(environment: ["AWS_CONFIG_FILE": home + "/cfg/config", "AWS_PROFILE": "p"],
                                        home: home)
        XCTAssertEqual(p.accessKeyId, "AKIDP")
    }

    func testCRLFAndWhitespaceInFiles() throws {
        try write(".aws/credentials", "\r\n  [ default ]  \r\n\taws_access_key_id\t=\tAKIDCRLF\r\naws_secret_access_key: sCRLF\r\n")
        let c = try Credentials.resolve(environment: noIMDS([:]), home: home)
        XCTAssertEqual(c, Credentials(accessKeyId: "AKIDCRLF", secretAccessKey: "sCRLF"))
    }

    // MARK: - Failures

    func testNothingFoundSaysWhatWasTried() {
        XCTAssertThrowsError(try Credentials.resolve(environment: noIMDS([:]), home: home)) { e in
            guard let ce = e as? CredentialsError else { return XCTFail("wrong error \(e)") }
            XCTAssertEqual(ce.kind, .notFound)
            let text = "\(ce)"
            XCTAssertFalse(text.contains("\n"))
            XCTAssertTrue(text.contains("environment"), text)
            XCTAssertTrue(text.contains(home + "/.aws/credentials"), text)
            XCTAssertTrue(text.contains(home + "/.aws/config"), text)
        }
    }

    func testMissingExplicitProfile() throws {
        try write(".aws/credentials", Self.credentialsFile)
        XCTAssertThrowsError(try Credentials.resolve(environment: noIMDS(["AWS_PROFILE": "nope"]), home: home)) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .profileNotFound)
            XCTAssertTrue("\(e)".contains("'nope'"), "\(e)")
            XCTAssertFalse("\(e)".contains("secretDEFAULT"))
        }
    }

    func testProfileWithHalfAPairIsAnErrorWithoutSecrets() throws {
        try write(".aws/credentials", "[default]\naws_secret_access_key = topsecret\n")
        XCTAssertThrowsError(try Credentials.resolve(environment: noIMDS([:]), home: home)) { e in
            XCTAssertEqual((e as? CredentialsError)?.kind, .incomplete)
            XCTAssertFalse("\(e)".contains("topsecret"))
        }
    }

    func testUnsupportedProfileKindsAreNamed() throws {
        try write(".aws/config", Self.configFile + "\n[profile sso]\nsso_session = corp\n"
                  + "[profile mfa]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = default\n"
                  + "mfa_serial = arn:aws:iam::123456789012:mfa/me\n")
        for (profile, word) in [("sso", "sso_session"), ("mfa", "mfa_serial")] {
            XCTAssertThrowsError(try Credentials.resolve(environment: noIMDS(["AWS_PROFILE": profile]), home: home)) { e in
                XCTAssertEqual((e as? CredentialsError)?.kind, .unsupported)
                XCTAssertTrue("\(e)".contains(word) && "\(e)".contains("not support"), "\(e)")
            }
        }
    }

    // MARK: - Redaction

    func testDescriptionsNeverShowSecrets() {
        let c = Credentials(accessKeyId: "AKIDVISIBLE", secretAccessKey: "SUPERSECRETKEY", sessionToken: "SESSIONTOKEN")
        var dumped = ""
        dump(c, to: &dumped)
        let renderings = [c.description, c.debugDescription, "\(c)", String(describing: c), String(reflecting: c),
                          dumped, "\([c])", "\(Optional(c) as Any)",
                          String(describing: S3RequestBuilder(endpoint: try! S3Endpoint(url: nil, region: "us-east-1"),
                                                              credentials: c))]
        for r in renderings {
            XCTAssertFalse(r.contains("SUPERSECRETKEY"), r)
            XCTAssertFalse(r.contains("SESSIONTOKEN"), r)
        }
        XCTAssertTrue(c.description.contains("AKIDVISIBLE"))
        XCTAssertTrue(c.description.contains("<redacted>"))
        XCTAssertFalse(Credentials(accessKeyId: "A", secretAccessKey: "B").description.contains("sessionToken"))
    }

    func testCodableRoundTrip() throws {
        let c = Credentials(accessKeyId: "A", secretAccessKey: "B", sessionToken: "C")
        let back = try JSONDecoder().decode(Credentials.self, from: JSONEncoder().encode(c))
        XCTAssertEqual(back, c)
    }

    // MARK: - INI parser

    func testINIParser() {
        let cfg = AWSSharedConfig(parsing: """
            top = ignored (no section)
            [default]
            Region = us-west-2 # comment
            url = http://host/#frag
            empty =
            [profile   two  words]
            key = value=with=equals
            ;[commented]
            # key2 = nope
            s3 =
              max_concurrent_requests = 20
            after = yes
              indented_not_nested = 1
            [default]
            extra = merged
            """)
        XCTAssertEqual(cfg.sections["default"]?["region"], "us-west-2")
        XCTAssertEqual(cfg.sections["default"]?["url"], "http://host/#frag")
        XCTAssertEqual(cfg.sections["default"]?["empty"], "")
        XCTAssertEqual(cfg.sections["default"]?["extra"], "merged")
        XCTAssertNil(cfg.sections["default"]?["top"])
        XCTAssertEqual(cfg.sections["profile two words"]?["key"], "value=with=equals")
        XCTAssertEqual(cfg.sections["profile two words"]?["s3.max_concurrent_requests"], "20")
        XCTAssertNil(cfg.sections["profile two words"]?["max_concurrent_requests"])
        XCTAssertEqual(cfg.sections["profile two words"]?["after"], "yes")
        XCTAssertEqual(cfg.sections["profile two words"]?["indented_not_nested"], "1")
        XCTAssertNil(cfg.sections["profile two words"]?["key2"])
        XCTAssertNil(cfg.sections["commented"])
        XCTAssertEqual(cfg.configProfile("two words")?["key"], "value=with=equals")
        XCTAssertEqual(cfg.configProfile("default")?["region"], "us-west-2")
    }

    func testByteOrderMarkIsIgnored() throws {
        try write(".aws/credentials", "\u{FEFF}[default]\r\naws_access_key_id=AKIDBOM\r\naws_secret_access_key=s\r\n")
        XCTAssertEqual(try Credentials.resolve(environment: noIMDS([:]), home: home).accessKeyId, "AKIDBOM")
    }

    func testConfigProfileDefaultAlsoAcceptsProfilePrefix() {
        let cfg = AWSSharedConfig(parsing: "[profile default]\nregion = x\n")
        XCTAssertEqual(cfg.configProfile("default")?["region"], "x")
    }

    // MARK: - Region

    // These tests stop before instance metadata (this VM may have a real IMDS); the IMDS step is
    // tested against a stub in RegionContractTests.
    func testRegionOrder() throws {
        try write(".aws/config", Self.configFile)
        let all = ["AWS_REGION": "env-region", "AWS_DEFAULT_REGION": "env-default-region"]
        XCTAssertEqual(RegionResolver.resolve(flag: "flag-region", environment: all, home: home, instanceMetadata: false), "flag-region")
        XCTAssertEqual(RegionResolver.resolve(flag: nil, environment: all, home: home, instanceMetadata: false), "env-region")
        XCTAssertEqual(RegionResolver.resolve(flag: "  ", environment: all, home: home, instanceMetadata: false), "env-region")
        XCTAssertEqual(RegionResolver.resolve(flag: nil, environment: ["AWS_DEFAULT_REGION": "env-default-region",
                                                                       "AWS_REGION": ""], home: home, instanceMetadata: false),
                       "env-default-region")
        let fromFile = RegionResolver.resolveWithSource(flag: nil, environment: [:], home: home, instanceMetadata: false)
        XCTAssertEqual(fromFile.region, "eu-west-1")
        XCTAssertEqual(fromFile.source, home + "/.aws/config [default]")
        XCTAssertEqual(RegionResolver.resolve(flag: nil, environment: ["AWS_PROFILE": "cfgonly"], home: home, instanceMetadata: false),
                       "ap-south-1", "nested s3.region must not shadow the profile's region")
        XCTAssertEqual(RegionResolver.resolve(flag: nil, environment: ["AWS_PROFILE": "rolebased"], home: home, instanceMetadata: false),
                       "us-east-1")
    }

    func testRegionDefaultWithoutFiles() {
        let r = RegionResolver.resolveWithSource(flag: nil, environment: [:], home: home, instanceMetadata: false)
        XCTAssertEqual(r.region, "us-east-1")
        XCTAssertEqual(r.source, "default")
    }

    func testRegionFromCustomConfigFile() throws {
        try write("x/config", "[profile p]\nregion=sa-east-1\n")
        XCTAssertEqual(RegionResolver.resolve(flag: nil, environment: ["AWS_CONFIG_FILE": home + "/x/config",
                                                                       "AWS_DEFAULT_PROFILE": "p"], home: home, instanceMetadata: false),
                       "sa-east-1")
    }
}
