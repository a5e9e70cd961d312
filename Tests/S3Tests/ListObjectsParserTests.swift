/// ListObjectsV2 and error-body XML as real servers write it.
///
/// The SeaweedFS-like bodies mimic Go's encoding/xml output (no whitespace, `&#34;` for quotes,
/// `&#39;` for apostrophes, RFC 3339 nanosecond times, a default namespace); the AWS-like ones
/// follow the S3 API reference (indented, `&quot;` ETags, millisecond times).
import Foundation
import XCTest
@testable import S3

final class ListObjectsParserTests: XCTestCase {
    func parse(_ xml: String) throws -> ListPage { try ListObjectsParser.parse(Data(xml.utf8)) }

    // MARK: - Realistic responses

    func testAWSLikeResponse() throws {
        let page = try parse("""
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>examplebucket</Name>
              <Prefix></Prefix>
              <KeyCount>3</KeyCount>
              <MaxKeys>1000</MaxKeys>
              <IsTruncated>true</IsTruncated>
              <Contents>
                <Key>my-image.jpg</Key>
                <LastModified>2009-10-12T17:50:30.000Z</LastModified>
                <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>
                <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>
                <Size>434234</Size>
                <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>mtd</DisplayName></Owner>
                <StorageClass>STANDARD</StorageClass>
              </Contents>
              <Contents>
                <Key>big/multipart.bin</Key>
                <LastModified>2023-01-02T03:04:05.678Z</LastModified>
                <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
                <Size>5368709120</Size>
                <StorageClass>STANDARD</StorageClass>
              </Contents>
              <Contents>
                <Key>empty</Key>
                <LastModified>2023-01-02T03:04:05Z</LastModified>
                <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>
                <Size>0</Size>
              </Contents>
              <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
            </ListBucketResult>
            """)
        XCTAssertEqual(page.objects, [
            ObjectInfo(key: "my-image.jpg", size: 434_234, etag: "fba9dede5f27731c9771645a39863328",
                       lastModified: 1_255_369_830),
            ObjectInfo(key: "big/multipart.bin", size: 5_368_709_120, etag: "3858f62230ac3c915f300c664312c11f-9",
                       lastModified: 1_672_628_645.678),
            ObjectInfo(key: "empty", size: 0, etag: "d41d8cd98f00b204e9800998ecf8427e", lastModified: 1_672_628_645),
        ])
        XCTAssertTrue(page.isTruncated)
        XCTAssertEqual(page.nextContinuationToken, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        XCTAssertEqual(page.commonPrefixes, [])
        XCTAssertEqual(page.objects[1].lastModified!, 1_672_628_645.678, accuracy: 0.0005)
    }

    func testSeaweedFSLikeResponse() throws {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            + "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>data</Name><Prefix>runs/</Prefix>"
            + "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>"
            + "<Contents><Key>runs/a b &amp; c&#39;s &lt;file&gt; &#34;q&#34;.bin</Key>"
            + "<LastModified>2024-03-05T10:11:12.123456789Z</LastModified>"
            + "<ETag>&#34;9e107d9d372bb6826bd81d3542a419d6&#34;</ETag><Size>1048576</Size>"
            + "<Owner><ID>0</ID><DisplayName>admin</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>"
            + "<Contents><Key>runs/Überß 日本語 😀.txt</Key><LastModified>2024-03-05T10:11:12Z</LastModified>"
            + "<ETag>&#34;0a1b2c3d4e5f60718293a4b5c6d7e8f9-12&#34;</ETag><Size>7</Size></Contents>"
            + "<CommonPrefixes><Prefix>runs/sub dir/</Prefix></CommonPrefixes>"
            + "<CommonPrefixes><Prefix>runs/x&amp;y/</Prefix></CommonPrefixes>"
            + "<KeyCount>4</KeyCount></ListBucketResult>"
        let page = try parse(xml)
        XCTAssertEqual(page.objects.map(\.key), ["runs/a b & c's <file> \"q\".bin", "runs/Überß 日本語 😀.txt"])
        XCTAssertEqual(page.objects.map(\.etag), ["9e107d9d372bb6826bd81d3542a419d6", "0a1b2c3d4e5f60718293a4b5c6d7e8f9-12"])
        XCTAssertEqual(page.objects.map(\.size), [1_048_576, 7])
        XCTAssertEqual(page.objects[0].lastModified!, 1_709_633_472.123456789, accuracy: 0.000_01)
        XCTAssertEqual(page.objects[1].lastModified, 1_709_633_472)
        XCTAssertEqual(page.commonPrefixes, ["runs/sub dir/", "runs/x&y/"])
        XCTAssertFalse(page.isTruncated)
        XCTAssertNil(page.nextContinuationToken)
    }

    func testKeysKeepSurroundingWhitespaceAndCDATA() throws {
        let page = try parse("""
            <ListBucketResult><Contents><Key>  spaced  </Key><Size>1</Size><ETag>"e"</ETag></Contents>\
            <Contents><Key><![CDATA[cdata <&> key]]></Key><Size>2</Size><ETag>e2</ETag></Contents>\
            <Contents><Key>tab&#9;and&#xA;newline</Key><Size>3</Size></Contents></ListBucketResult>
            """)
        XCTAssertEqual(page.objects.map(\.key), ["  spaced  ", "cdata <&> key", "tab\tand\nnewline"])
        XCTAssertEqual(page.objects.map(\.etag), ["e", "e2", ""])
        XCTAssertEqual(page.objects.map(\.lastModified), [nil, nil, nil])
    }

    func testEmptyListing() throws {
        let page = try parse("""
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>nothing/</Prefix>\
            <KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>
            """)
        XCTAssertEqual(page, ListPage())
    }

    func testNamespacePrefixedElements() throws {
        let page = try parse("""
            <s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><s3:IsTruncated>true</s3:IsTruncated>\
            <s3:Contents><s3:Key>k</s3:Key><s3:Size>5</s3:Size><s3:ETag>"x"</s3:ETag></s3:Contents>\
            <s3:NextContinuationToken>t</s3:NextContinuationToken></s3:ListBucketResult>
            """)
        XCTAssertEqual(page.objects, [ObjectInfo(key: "k", size: 5, etag: "x")])
        XCTAssertEqual(page.nextContinuationToken, "t")
        XCTAssertTrue(page.isTruncated)
    }

    func testNestedPrefixElementsAreNotCommonPrefixes() throws {
        // Top-level <Prefix> and <StartAfter> must not leak into objects or common prefixes.
        let page = try parse("""
            <ListBucketResult><Prefix>top/</Prefix><StartAfter>top/a</StartAfter>\
            <CommonPrefixes><Prefix>top/b/</Prefix></CommonPrefixes></ListBucketResult>
            """)
        XCTAssertEqual(page.commonPrefixes, ["top/b/"])
        XCTAssertEqual(page.objects, [])
    }

    // MARK: - EncodingType=url

    func testURLEncodedKeysAreDecoded() throws {
        let page = try parse("""
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>b</Name><Prefix>dir%2F</Prefix><Delimiter>%2F</Delimiter>
              <Contents><Key>dir/a+b%2Bc%25d%3F%23.txt</Key><Size>1</Size><ETag>&quot;x&quot;</ETag></Contents>
              <Contents><Key>dir/%C3%BCber%20%E6%97%A5</Key><Size>2</Size><ETag>&quot;y&quot;</ETag></Contents>
              <Contents><Key>dir/ctrl%01%02</Key><Size>3</Size><ETag>&quot;z&quot;</ETag></Contents>
              <CommonPrefixes><Prefix>dir/sub+dir%2F</Prefix></CommonPrefixes>
              <IsTruncated>true</IsTruncated>
              <NextContinuationToken>abc%2B+def</NextContinuationToken>
              <EncodingType>url</EncodingType>
            </ListBucketResult>
            """)
        XCTAssertEqual(page.objects.map(\.key), ["dir/a b+c%d?#.txt", "dir/über 日", "dir/ctrl\u{1}\u{2}"])
        XCTAssertEqual(page.commonPrefixes, ["dir/sub dir/"])
        XCTAssertEqual(page.nextContinuationToken, "abc%2B+def", "tokens are opaque, never decoded")
    }

    func testKeysAreNotDecodedWithoutEncodingType() throws {
        let page = try parse("<ListBucketResult><Contents><Key>a+b%20c</Key><Size>1</Size></Contents></ListBucketResult>")
        XCTAssertEqual(page.objects.map(\.key), ["a+b%20c"])
    }

    func testBadURLEncodingIsAnError() {
        for key in ["bad%2", "bad%zz", "bad%FF%FE"] {
            XCTAssertThrowsError(try parse("""
                <ListBucketResult><EncodingType>url</EncodingType><Contents><Key>\(key)</Key><Size>1</Size></Contents>\
                </ListBucketResult>
                """), key) { e in XCTAssertTrue(e is ListObjectsParseError, "\(e)") }
        }
    }

    func testURLDecode() {
        XCTAssertEqual(ListObjectsParser.urlDecode("a+b%2B%2b%41"), "a b++A")
        XCTAssertEqual(ListObjectsParser.urlDecode(""), "")
        XCTAssertNil(ListObjectsParser.urlDecode("%"))
        XCTAssertNil(ListObjectsParser.urlDecode("%C3"))
    }

    func testUnquoteETag() {
        XCTAssertEqual(ListObjectsParser.unquoteETag("\"abc\""), "abc")
        XCTAssertEqual(ListObjectsParser.unquoteETag(" \"abc-3\" "), "abc-3")
        XCTAssertEqual(ListObjectsParser.unquoteETag("abc"), "abc")
        XCTAssertEqual(ListObjectsParser.unquoteETag("W/\"abc\""), "abc")
        XCTAssertEqual(ListObjectsParser.unquoteETag("\"abc"), "abc")
        XCTAssertEqual(ListObjectsParser.unquoteETag("\"\""), "")
    }

    /// Dates are trimmed on the bytes when ASCII and by Foundation otherwise: the same set of
    /// whitespace either way.
    func testISO8601WhitespaceIsTrimmedLikeFoundation() {
        let plain = UTCTime.parseISO8601("2009-10-12T17:50:30.000Z")
        XCTAssertNotNil(plain)
        for padded in ["\u{0B}2009-10-12T17:50:30.000Z\u{0C}", "\r\n\t 2009-10-12T17:50:30.000Z \n",
                       "\u{A0}2009-10-12T17:50:30.000Z\u{85}", "\u{3000}2009-10-12T17:50:30.000Z"] {
            XCTAssertEqual(UTCTime.parseISO8601(padded), plain, padded.debugDescription)
        }
        for bad in ["\u{1C}2009-10-12T17:50:30.000Z", "2009-10-12T17:50:30.000Z\u{0}", "x2009-10-12T17:50:30Z"] {
            XCTAssertNil(UTCTime.parseISO8601(bad), bad.debugDescription)
        }
    }

    /// ETags of ASCII text are unquoted on the bytes, of other text through Foundation: same rules.
    func testUnquoteETagASCIIMatchesFoundationRules() {
        for raw in ["\u{0B}\"a\"\u{0C}", "\r\n\"a\"\r\n", "W/", "W/ \"a\"", "\"\"\"a\"\"", "\"", "\"a", "a\"", " W/\"a\" ", "\u{1C}\"a\"",
                    "\u{85}\"a\"", "\u{A0}\"é\"\u{3000}", "\"\u{301}a\"", "W/\"\u{301}\""] {
            XCTAssertEqual(Array(ListObjectsParser.unquoteETag(raw).utf8),
                           Array(ListObjectsParser.unquoteETagWithFoundation(raw).utf8), raw.debugDescription)
        }
    }

    // MARK: - Malformed

    func testMalformedXMLThrows() {
        let bodies = [
            "",
            "not xml at all",
            "<ListBucketResult><Contents><Key>k</Key>",                    // truncated
            "<ListBucketResult><Contents><Key>k</Size></Contents></ListBucketResult>", // mismatched
            "<ListBucketResult><Key>a & b</Key></ListBucketResult>",       // bare ampersand
            "<html><body><h1>502 Bad Gateway</h1></body>",                 // proxy page, unclosed
            "<ListBucketResult></ListBucketResult><Extra/>",               // two roots
        ]
        for body in bodies {
            XCTAssertThrowsError(try parse(body), body) { e in
                guard let pe = e as? ListObjectsParseError else { return XCTFail("\(body): wrong error \(e)") }
                XCTAssertFalse(pe.description.isEmpty)
                XCTAssertFalse(pe.description.contains("\n"), pe.description)
            }
        }
    }

    func testWrongRootThrows() {
        XCTAssertThrowsError(try parse("<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")) { e in
            XCTAssertTrue("\(e)".contains("ListBucketResult"), "\(e)")
        }
        XCTAssertThrowsError(try parse("<ListAllMyBucketsResult></ListAllMyBucketsResult>"))
    }

    func testStructurallyBadContentsThrow() {
        XCTAssertThrowsError(try parse("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>")) { e in
            XCTAssertTrue("\(e)".contains("Key"), "\(e)")
        }
        XCTAssertThrowsError(try parse("<ListBucketResult><Contents><Key>k</Key><Size>big</Size></Contents></ListBucketResult>")) { e in
            XCTAssertTrue("\(e)".contains("Size"), "\(e)")
        }
        XCTAssertThrowsError(try parse("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>"))
        XCTAssertThrowsError(try parse("<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>"))
    }

    func testUnreadableLastModifiedIsNil() throws {
        let page = try parse("""
            <ListBucketResult><Contents><Key>k</Key><Size>1</Size><LastModified>yesterday</LastModified></Contents>\
            </ListBucketResult>
            """)
        XCTAssertNil(page.objects[0].lastModified)
    }

    // MARK: - ISO 8601

    func testISO8601() {
        XCTAssertEqual(UTCTime.parseISO8601("2009-10-12T17:50:30.000Z"), 1_255_369_830)
        XCTAssertEqual(UTCTime.parseISO8601("2009-10-12T17:50:30Z"), 1_255_369_830)
        XCTAssertEqual(UTCTime.parseISO8601("2009-10-12T17:50:30"), 1_255_369_830)
        XCTAssertEqual(UTCTime.parseISO8601("2009-10-12T19:50:30+02:00"), 1_255_369_830)
        XCTAssertEqual(UTCTime.parseISO8601("2009-10-12T12:50:30-0500"), 1_255_369_830)
        XCTAssertEqual(UTCTime.parseISO8601("1970-01-01T00:00:00Z"), 0)
        XCTAssertEqual(UTCTime.parseISO8601("2000-02-29T00:00:00Z"), 951_782_400)
        XCTAssertEqual(UTCTime.parseISO8601(" 2009-10-12 17:50:30.5Z\n"), 1_255_369_830.5)
        for bad in ["", "2009-10-12", "2009-13-01T00:00:00Z", "2009-10-12T25:00:00Z", "2009-10-12T17:50:30.Z",
                    "2009-10-12T17:50:30Zjunk", "Mon, 12 Oct 2009 17:50:30 GMT"] {
            XCTAssertNil(UTCTime.parseISO8601(bad), bad)
        }
    }

    // MARK: - Error bodies

    func testErrorBodyParse() {
        let body = S3ErrorBody.parse(Data("""
            <?xml version="1.0" encoding="UTF-8"?>
            <Error>
              <Code>NoSuchKey</Code>
              <Message>The resource you requested does not exist</Message>
              <Resource>/mybucket/myfoto.jpg</Resource>
              <RequestId>4442587FB7D0A2F9</RequestId>
            </Error>
            """.utf8))
        XCTAssertEqual(body, S3ErrorBody(code: "NoSuchKey", message: "The resource you requested does not exist",
                                         requestId: "4442587FB7D0A2F9"))
    }

    func testErrorBodyWithRegionAndEntities() {
        let body = S3ErrorBody.parse(Data("""
            <Error><Code>AuthorizationHeaderMalformed</Code><Message>the region &apos;us-east-1&apos; is wrong; \
            expecting &#39;eu-west-1&#39;</Message><Region>eu-west-1</Region><RequestId>R</RequestId>\
            <HostId>H</HostId></Error>
            """.utf8))
        XCTAssertEqual(body?.code, "AuthorizationHeaderMalformed")
        XCTAssertEqual(body?.message, "the region 'us-east-1' is wrong; expecting 'eu-west-1'")
        XCTAssertEqual(body?.region, "eu-west-1")

        let redirect = S3ErrorBody.parse(Data("""
            <Error><Code>PermanentRedirect</Code><Message>Use the endpoint.</Message>\
            <Endpoint>b.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>b</Bucket></Error>
            """.utf8))
        XCTAssertEqual(redirect?.endpoint, "b.s3.eu-west-1.amazonaws.com")
    }

    func testErrorBodySeaweedFSLike() {
        let body = S3ErrorBody.parse(Data(("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
            + "<Message>Please reduce your request rate.</Message><Resource>/data/k</Resource>"
            + "<RequestId>17A3C0E6B1F2D4E8</RequestId></Error>").utf8))
        XCTAssertEqual(body?.code, "SlowDown")
        XCTAssertEqual(body?.message, "Please reduce your request rate.")
    }

    func testErrorBodyWithoutMessage() {
        XCTAssertEqual(S3ErrorBody.parse(Data("<Error><Code>InternalError</Code></Error>".utf8)),
                       S3ErrorBody(code: "InternalError", message: ""))
    }

    func testNotAnErrorBody() {
        for text in ["", "   ", "<html><body>Bad Gateway</body></html>", "<Error><Message>no code</Message></Error>",
                     "<Error><Code>  </Code></Error>", "<Error><Code>Trunc", "<ListBucketResult/>",
                     "<Other><Error><Code>Nested</Code></Error></Other>", "{\"json\": true}"] {
            XCTAssertNil(S3ErrorBody.parse(Data(text.utf8)), text)
        }
    }
}

final class ListObjectsParserScaleTests: XCTestCase {
    static func bigListing(_ n: Int, tag: Int) -> Data {
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            + "<Name>data</Name><IsTruncated>true</IsTruncated>"
        for i in 0..<n {
            xml += "<Contents><Key>shard-\(tag)/file &amp; \(i).bin</Key><LastModified>2024-03-05T10:11:12.5Z</LastModified>"
                + "<ETag>&#34;\(String(i, radix: 16))-2&#34;</ETag><Size>\(i * 1000)</Size>"
                + "<StorageClass>STANDARD</StorageClass></Contents>"
        }
        xml += "<NextContinuationToken>next-\(tag)</NextContinuationToken></ListBucketResult>"
        return Data(xml.utf8)
    }

    func testFullPage() throws {
        let page = try ListObjectsParser.parse(Self.bigListing(1000, tag: 0))
        XCTAssertEqual(page.objects.count, 1000)
        XCTAssertEqual(page.objects[999], ObjectInfo(key: "shard-0/file & 999.bin", size: 999_000, etag: "3e7-2",
                                                     lastModified: 1_709_633_472.5))
        XCTAssertEqual(page.nextContinuationToken, "next-0")
    }

    /// Workers and the coordinator may parse on several threads at once.
    func testConcurrentParsing() {
        let bodies = (0..<8).map { Self.bigListing(200, tag: $0) }
        final class Results: @unchecked Sendable { // guarded by `lock`
            let lock = NSLock()
            var counts = Array(repeating: -1, count: 64)
        }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let tag = i % 8
            guard let page = try? ListObjectsParser.parse(bodies[tag]),
                  page.nextContinuationToken == "next-\(tag)",
                  page.objects.allSatisfy({ $0.key.hasPrefix("shard-\(tag)/") }) else { return }
            results.lock.lock(); results.counts[i] = page.objects.count; results.lock.unlock()
        }
        XCTAssertEqual(results.counts, Array(repeating: 200, count: 64))
    }
}
