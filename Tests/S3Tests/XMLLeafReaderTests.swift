import Foundation
import XCTest
@testable import S3

/// The hand-written XML reader: the leaves S3 sends, and a clean error for everything else.
final class XMLLeafReaderTests: XCTestCase {
    private func leaves(_ xml: String) throws -> [String] {
        var out: [String] = []
        try XMLLeafReader.read(Data(xml.utf8), open: { _ in }, close: { path, text in
            out.append(path.joined(separator: "/") + "=" + text)
        })
        return out
    }

    func testLeavesReferencesCDATANamespacesAndAttributes() throws {
        let xml = """
            \u{FEFF}<?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <s3:R xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/" a='x>y'>
              <s3:K> a&amp;b &lt;&gt; &#34;q&#x22; &#233; </s3:K><E/><C><![CDATA[raw &amp; <x>]]>!</C>
            </s3:R>
            """
        let got = try leaves(xml)
        XCTAssertEqual(got.filter { !$0.hasPrefix("R=") }, ["R/K= a&b <> \"q\" é ", "R/E=", "R/C=raw &amp; <x>!"])
    }

    func testMalformedDocumentsThrowNeverCrash() {
        let bad = [
            "", "   ", "text", "<a>", "<a></b>", "</a>", "<a></a><b></b>", "<a></a>junk", "<a>&bogus;</a>",
            "<a>&#0;</a>", "<a>&#xD800;</a>", "<a>&#99999999999;</a>", "<a>&amp</a>", "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
            "<a><![CDATA[x</a>", "<a><!-- x</a>", "<a b='x></a>", "<a\u{0}></a>", "<a>\u{0}</a>", "<?xml",
            "<a>\u{FF}</a>", "< a></a>", "<a/ >", String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100),
        ]
        for x in bad {
            var data = Data(x.utf8)
            if x == "<a>\u{FF}</a>" { data = Data([0x3C, 0x61, 0x3E, 0xFF, 0x3C, 0x2F, 0x61, 0x3E]) }  // not UTF-8
            XCTAssertThrowsError(try XMLLeafReader.read(data, open: { _ in }, close: { _, _ in }), x.debugDescription)
        }
    }
}
