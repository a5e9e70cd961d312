import Foundation
import XCTest

/// The STS-backed sources and credential_process, each alone through scripts/s3front.py (its
/// STS endpoint issues front keys; its S3 side accepts only issued keys with their tokens):
/// web identity from the environment, a profile's role_arn + source_profile (AssumeRole signed
/// with the source's static keys), and a profile's credential_process. Each is also shown
/// broken (a wrong token, a wrong source secret, a mangled document) and refused by the front.
/// Plus S3 refusing keys before the client thinks they expire (`--skew`): the coordinator and
/// the workers get new keys at once.
extension CredentialFrontIntegrationTests {
    /// No static keys, no container endpoint, no IMDS, no files but the test's: only what the
    /// caller adds can answer.
    func bareEnv() -> [String: String] {
        ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
         "HOME": work + "/home", "AWS_CONFIG_FILE": work + "/home/.aws/config",
         "AWS_SHARED_CREDENTIALS_FILE": work + "/home/.aws/credentials",
         "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
         "AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "",
         "AWS_ENDPOINT_URL_STS": "", "AWS_REGION": "us-east-1"]
    }

    func writeConfig(_ text: String) throws {
        try FileManager.default.createDirectory(atPath: work + "/home/.aws", withIntermediateDirectories: true)
        try text.write(toFile: work + "/home/.aws/config", atomically: true, encoding: .utf8)
    }

    func sourceFiles() throws -> (files: [String: Int], sums: [String: String]) {
        var files: [String: Int] = ["big.bin": 9_000_000]
        for i in 0..<5 { files["d/f\(i).bin"] = 40_000 + i * 911 }
        return (files, try Harness.uploadTree(files, bucket: bucket, prefix: "src/", work: work))
    }

    /// Downloads src/ through the front; returns the result and the destination.
    func download(_ front: Front, env: [String: String], dest: String, extra: [String: String] = [:],
                  timeout: Double = 120) throws -> Harness.Result {
        try Harness.soak(["download", "s3://\(bucket)/src/", work + "/" + dest, "--endpoint-url", front.url,
                          "--log-level", "info"], env: env.merging(extra) { $1 }, timeout: timeout)
    }

    func checkBytes(_ sums: [String: String], dest: String, _ what: String) {
        for (key, sum) in sums { XCTAssertEqual(try? Harness.sha256(work + "/" + dest + "/" + key), sum, "\(what): \(key)") }
    }

    /// (a) EKS IRSA's shape: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, STS at
    /// AWS_ENDPOINT_URL_STS. The front's first STS answer is a 500, which the client retries.
    func testWebIdentityAloneThroughTheFront() throws {
        let (files, sums) = try sourceFiles()
        let accepted = work + "/idp-token"
        try "oidc-token-\(UUID().uuidString)".write(toFile: accepted, atomically: true, encoding: .utf8)
        let front = try startFront(lifetime: 900, extra: ["--web-identity-token-file", accepted, "--sts-fail", "1"])
        var e = bareEnv()
        e["AWS_WEB_IDENTITY_TOKEN_FILE"] = work + "/pod-token"
        e["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/soak-test-role"
        e["AWS_ROLE_SESSION_NAME"] = "soak-it"
        e["AWS_ENDPOINT_URL_STS"] = front.url
        try FileManager.default.copyItem(atPath: accepted, toPath: work + "/pod-token")
        let r = try download(front, env: e, dest: "web")
        XCTAssertEqual(r.status, 0, r.stderr)
        checkBytes(sums, dest: "web", "web identity")
        var s = try front.stats()
        XCTAssertEqual(s.issuedBy, ["sts-web": 1])
        XCTAssertEqual(s.refused, ["STS:InternalFailure": 1], "one 500, retried")
        XCTAssertEqual(s.requests.count, 1)
        XCTAssertGreaterThanOrEqual(s.requests.values.reduce(0, +), 1 + files.count)
        XCTAssertFalse(r.stderr.contains("FRONTTOKEN") || r.stderr.contains("oidc-token"), "a token was logged")

        // Broken: the pod's token is not the one the identity provider accepts.
        try "oidc-token-stale".write(toFile: work + "/pod-token", atomically: true, encoding: .utf8)
        let bad = try download(front, env: e, dest: "web-bad")
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("web identity") && bad.stderr.contains("InvalidIdentityToken"), bad.stderr)
        s = try front.stats()
        XCTAssertEqual(s.refused["STS:InvalidIdentityToken"], 1)
        XCTAssertEqual(s.issuedBy, ["sts-web": 1], "nothing issued for the wrong token")
    }

    /// (b) A profile's role_arn + source_profile: AssumeRole signed with the source's static keys
    /// (the front accepts only those), across at least 3 rotations of 5-second keys: every refresh
    /// is another AssumeRole. The source keys themselves are never accepted for S3.
    func testAssumeRoleProfileAloneAcrossRotations() throws {
        var files: [String: Int] = [:]
        for i in 0..<120 { files[String(format: "f%03d.bin", i)] = 150_000 + i * 313 }
        let sums = try Harness.uploadTree(files, bucket: bucket, prefix: "src/", work: work)
        let front = try startFront(lifetime: 5, extra: ["--source-key", "AKIDFRONTSOURCE:source-secret-1"])
        try writeConfig("""
            [profile base]
            aws_access_key_id = AKIDFRONTSOURCE
            aws_secret_access_key = source-secret-1
            [profile ml]
            role_arn = arn:aws:iam::123456789012:role/soak-test-role
            source_profile = base
            role_session_name = soak-it
            [profile wrong]
            role_arn = arn:aws:iam::123456789012:role/soak-test-role
            source_profile = wrongbase
            [profile wrongbase]
            aws_access_key_id = AKIDFRONTSOURCE
            aws_secret_access_key = not-the-secret
            """)
        var e = bareEnv()
        e["AWS_PROFILE"] = "ml"
        e["AWS_ENDPOINT_URL_STS"] = front.url
        let r = try download(front, env: e, dest: "role",
                             extra: ["MAX_SPEED": "1", "MIN_PROCESSES": "1", "MAX_PROCESSES": "1"], timeout: 180)
        XCTAssertEqual(r.status, 0, r.stderr)
        checkBytes(sums, dest: "role", "assume role")
        var s = try front.stats()
        XCTAssertEqual(s.refused, [:], r.stderr)
        XCTAssertEqual(Set(s.issuedBy.keys), ["sts-role"])
        XCTAssertGreaterThanOrEqual(s.requests.count, 4, "at least 3 rotations: \(s.requests)")
        XCTAssertTrue(r.stderr.contains("credentials refreshed from profile 'ml'"), String(r.stderr.suffix(2000)))
        XCTAssertFalse(r.stderr.contains("source-secret-1") || r.stderr.contains("FRONTTOKEN"), "a secret was logged")
        print("assume role rotation: keys used: \(s.requests.sorted { $0.key < $1.key })")

        // Broken: the source profile's secret is wrong, so STS refuses the signature.
        e["AWS_PROFILE"] = "wrong"
        let bad = try download(front, env: e, dest: "role-bad")
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("profile 'wrong'") && bad.stderr.contains("SignatureDoesNotMatch"), bad.stderr)
        s = try front.stats()
        XCTAssertEqual(s.refused["STS:SignatureDoesNotMatch"], 1)
    }

    /// (c) A profile's credential_process: a script that fetches keys from the front and prints
    /// JSON Version 1 with an Expiration.
    func testCredentialProcessAloneThroughTheFront() throws {
        let (files, sums) = try sourceFiles()
        let front = try startFront(lifetime: 900)
        let script = work + "/creds.sh", mangled = work + "/mangled.sh"
        let fetch = "curl -sf -H 'Authorization: \(front.token)' \(front.url)/__front/process"
        try "#!/bin/sh\nexec \(fetch)\n".write(toFile: script, atomically: true, encoding: .utf8)
        // Broken: the secret it prints is not the one the front issued.
        try "#!/bin/sh\n\(fetch) | sed 's/\"SecretAccessKey\": \"/\"SecretAccessKey\": \"x/'\n"
            .write(toFile: mangled, atomically: true, encoding: .utf8)
        for f in [script, mangled] { chmod(f, 0o755) }
        try writeConfig("""
            [default]
            credential_process = \(script)
            [profile mangled]
            credential_process = \(mangled)
            """)
        let e = bareEnv()
        let r = try download(front, env: e, dest: "proc")
        XCTAssertEqual(r.status, 0, r.stderr)
        checkBytes(sums, dest: "proc", "credential_process")
        var s = try front.stats()
        XCTAssertEqual(s.issuedBy, ["process": 1])
        XCTAssertEqual(s.refused, [:])
        XCTAssertEqual(s.requests.count, 1)
        XCTAssertGreaterThanOrEqual(s.requests.values.reduce(0, +), 1 + files.count)
        XCTAssertFalse(r.stderr.contains("FRONTTOKEN"), "a session token was logged")

        let bad = try download(front, env: e.merging(["AWS_PROFILE": "mangled"]) { $1 }, dest: "proc-bad")
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("does not match"), bad.stderr)
        s = try front.stats()
        XCTAssertEqual(s.issuedBy, ["process": 2])
        XCTAssertEqual(s.refused["SignatureDoesNotMatch"], 1)
    }

    /// S3 refuses keys as expired while the client's clock says they have an hour left (the
    /// front reports expirations an hour late): the workers' GETs get 400 ExpiredToken, the
    /// engine retries them and asks the keeper for new keys at once. Every byte right; the front
    /// really refused expired keys, and several keys signed. (The coordinator's own re-signing is
    /// covered by CredentialRejectionTests.)
    func testExpiredTokenBeforeTheRefreshTimeIsRefreshedAtOnce() throws {
        var files: [String: Int] = [:]
        for i in 0..<200 { files[String(format: "f%03d.bin", i)] = 150_000 + i * 313 }
        let sums = try Harness.uploadTree(files, bucket: bucket, prefix: "src/", work: work)
        let front = try startFront(lifetime: 12, extra: ["--skew", "3600"])
        var e = env(front, source: "container")
        e["AWS_EC2_METADATA_DISABLED"] = "true"
        let r = try download(front, env: e, dest: "skew",
                             extra: ["MAX_SPEED": "1", "MIN_PROCESSES": "1", "MAX_PROCESSES": "1"], timeout: 180)
        XCTAssertEqual(r.status, 0, String(r.stderr.suffix(3000)))
        checkBytes(sums, dest: "skew", "skew")
        let s = try front.stats()
        XCTAssertGreaterThanOrEqual(s.refused["ExpiredToken"] ?? 0, 1, "keys expired under the client: \(s.refused)")
        XCTAssertEqual(Set(s.refused.keys), ["ExpiredToken"])
        XCTAssertGreaterThanOrEqual(s.requests.count, 3, "refreshed at least twice: \(s.requests)")
        XCTAssertTrue(r.stderr.contains("credentials refreshed from container"), String(r.stderr.suffix(2000)))
        print("skew: refused \(s.refused), keys used: \(s.requests.sorted { $0.key < $1.key })")
    }
}
