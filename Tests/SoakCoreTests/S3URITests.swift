/// `S3URI(parsing:)`: `s3://BUCKET/PREFIX`, the prefix treated as a directory.
import XCTest
import SoakCore

final class S3URITests: XCTestCase {
    private func uri(_ s: String, file: StaticString = #filePath, line: UInt = #line) -> S3URI? {
        do { return try S3URI(parsing: s) } catch {
            XCTFail("\(s.debugDescription) refused: \(error)", file: file, line: line)
            return nil
        }
    }

    private func refusal(_ s: String) -> UsageError? {
        do { _ = try S3URI(parsing: s); return nil } catch { return error }
    }

    func testBucketOnly() {
        XCTAssertEqual(uri("s3://my-bucket"), S3URI(bucket: "my-bucket", prefix: ""))
    }

    func testBucketWithSlash() {
        XCTAssertEqual(uri("s3://my-bucket/"), S3URI(bucket: "my-bucket", prefix: ""))
    }

    func testPrefixGetsATrailingSlash() {
        XCTAssertEqual(uri("s3://b/photos"), S3URI(bucket: "b", prefix: "photos/"))
        XCTAssertEqual(uri("s3://b/photos/"), S3URI(bucket: "b", prefix: "photos/"))
    }

    func testNestedPrefix() {
        XCTAssertEqual(uri("s3://b/a/b/c"), S3URI(bucket: "b", prefix: "a/b/c/"))
        XCTAssertEqual(uri("s3://b/a/b/c/"), S3URI(bucket: "b", prefix: "a/b/c/"))
        // Key text is kept byte for byte: no normalisation of odd segments.
        XCTAssertEqual(uri("s3://b/a//b")?.prefix, "a//b/")
        XCTAssertEqual(uri("s3://b/with space/and+plus")?.prefix, "with space/and+plus/")
    }

    func testUnicodePrefix() {
        XCTAssertEqual(uri("s3://b/фото/2024"), S3URI(bucket: "b", prefix: "фото/2024/"))
        XCTAssertEqual(uri("s3://b/日本語"), S3URI(bucket: "b", prefix: "日本語/"))
        XCTAssertEqual(uri("s3://b/données/été/")?.prefix, "données/été/")
    }

    func testBucketNamesWithDotsAndDigits() {
        XCTAssertEqual(uri("s3://logs.example.com-2024/x")?.bucket, "logs.example.com-2024")
    }

    func testDescriptionIsTheCanonicalForm() {
        XCTAssertEqual(uri("s3://b/photos")?.description, "s3://b/photos/")
        XCTAssertEqual(uri("s3://b")?.description, "s3://b/")
        // Parsing the description gives the same URI back.
        for s in ["s3://b", "s3://b/x", "s3://b/x/y/", "s3://b/ü"] {
            guard let u = uri(s) else { continue }
            XCTAssertEqual(uri(u.description), u)
        }
    }

    func testNotAnS3URI() {
        for s in ["http://b/p", "https://b.s3.amazonaws.com/p", "b/p", "", "s3:/b/p", "s3:b", "S3://b/p", " s3://b/p"] {
            let e = refusal(s)
            XCTAssertNotNil(e, "\(s.debugDescription) accepted")
            XCTAssertTrue(e?.message.contains("not an S3 URI") ?? false, "\(s.debugDescription): \(String(describing: e))")
        }
    }

    func testMissingBucket() {
        for s in ["s3://", "s3:///", "s3:///p", "s3:///p/q"] {
            let e = refusal(s)
            XCTAssertNotNil(e, "\(s.debugDescription) accepted")
            XCTAssertTrue(e?.message.contains("no bucket") ?? false, "\(s.debugDescription): \(String(describing: e))")
            XCTAssertTrue(e?.message.contains(s) ?? false, "the message should quote the input")
        }
    }

    func testInvalidBucketNames() {
        for s in ["s3://my bucket/p", "s3://my bucket", "s3://tab\tbucket/p", "s3://b?x/p", "s3://b#x",
                  "s3://bücket/p", "s3://" + String(repeating: "a", count: 256)] {
            let e = refusal(s)
            XCTAssertNotNil(e, "\(s.debugDescription) accepted")
            XCTAssertTrue(e?.message.contains("invalid bucket name") ?? false, "\(s.debugDescription): \(String(describing: e))")
        }
        XCTAssertNotNil(uri("s3://" + String(repeating: "a", count: 255)))
    }

    func testNULInPrefix() {
        let e = refusal("s3://b/a\u{0}b")
        XCTAssertTrue(e?.message.contains("NUL") ?? false, String(describing: e))
    }

    func testUsageErrorIsOneLine() {
        let e = refusal("http://b/p")
        XCTAssertEqual(e?.description, e?.message)
        XCTAssertFalse(e?.message.contains("\n") ?? true)
    }
}
