/// A minimal streaming XML reader over Foundation's `XMLParser` for S3's flat responses.
///
/// S3 answers are shallow trees of text-only leaves, so the reader reports just two events:
/// an element opening (with its path from the root, to start a record) and an element closing
/// (with its path and the exact text it contained). Text is accumulated across
/// `foundCharacters`/`foundCDATA` calls, because the parser delivers entity and character
/// references (`&quot;`, `&#34;`) as separate chunks; it is never trimmed here, since object
/// keys may start or end with spaces. Namespaces are processed so `<s3:Key>` and `<Key>` read
/// alike; external entities are never resolved.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Malformed XML, with where the parser gave up.
struct XMLReadError: Error, Sendable, CustomStringConvertible {
    var message: String
    var line: Int
    var column: Int
    var description: String {
        line > 0 ? "malformed XML at line \(line), column \(column): \(message)" : "malformed XML: \(message)"
    }
}

enum XMLLeafReader {
    /// Parses `data`, calling `open(path)` when an element starts and `close(path, text)` when it
    /// ends. `path` runs from the root element to the current one (namespace prefixes dropped).
    static func read(_ data: Data, open: (_ path: [String]) -> Void,
                     close: (_ path: [String], _ text: String) -> Void) throws {
        try withoutActuallyEscaping(open) { open in
            try withoutActuallyEscaping(close) { close in
                guard !data.isEmpty else { throw XMLReadError(message: "empty body", line: 0, column: 0) }
                let delegate = Delegate(open: open, close: close)
                let parser = XMLParser(data: data)
                parser.shouldProcessNamespaces = true
                parser.shouldReportNamespacePrefixes = false
                parser.shouldResolveExternalEntities = false
                parser.delegate = delegate
                let ok = parser.parse()
                // swift-corelibs-foundation can report an error through the delegate (e.g. content
                // after the root element) and still return true, so every channel is checked.
                if let e = delegate.error ?? parser.parserError {
                    throw XMLReadError(message: Self.describe(e), line: delegate.errorLine ?? parser.lineNumber,
                                       column: delegate.errorColumn ?? parser.columnNumber)
                }
                if !ok || !delegate.sawRoot {
                    throw XMLReadError(message: delegate.sawRoot ? "parse failed" : "no root element",
                                       line: parser.lineNumber, column: parser.columnNumber)
                }
                if !delegate.path.isEmpty {
                    throw XMLReadError(message: "document ended inside <\(delegate.path.last!)>",
                                       line: parser.lineNumber, column: parser.columnNumber)
                }
            }
        }
    }

    private static func describe(_ error: Error) -> String {
        let ns = error as NSError
        #if canImport(FoundationXML)
        // swift-corelibs-foundation passes libxml2's error numbers through unchanged, so
        // `XMLParser.ErrorCode` names would be misleading here.
        let known: [Int: String] = [4: "empty document or not XML",
                                    5: "document ends early or has content after the root element",
                                    76: "mismatched closing tag", 77: "unclosed element"]
        return "\(known[ns.code] ?? "XML syntax error") (libxml2 code \(ns.code))"
        #else
        return ns.localizedDescription.replacingOccurrences(of: "\n", with: " ")
        #endif
    }

    private final class Delegate: NSObject, XMLParserDelegate {
        let open: ([String]) -> Void
        let close: ([String], String) -> Void
        var path: [String] = []
        var text = ""
        var sawRoot = false
        var error: Error? = nil
        var errorLine: Int? = nil
        var errorColumn: Int? = nil

        init(open: @escaping ([String]) -> Void, close: @escaping ([String], String) -> Void) {
            self.open = open
            self.close = close
        }

        private static func localName(_ name: String) -> String {
            if let colon = name.lastIndex(of: ":") { return String(name[name.index(after: colon)...]) }
            return name
        }

        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                    qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
            sawRoot = true
            path.append(Self.localName(elementName))
            text = ""
            open(path)
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
                    qualifiedName qName: String?) {
            close(path, text)
            text = ""
            if !path.isEmpty { path.removeLast() }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            text += string
        }

        func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) {
            if error == nil {
                error = parseError
                errorLine = parser.lineNumber
                errorColumn = parser.columnNumber
            }
        }

        func parser(_ parser: XMLParser, validationErrorOccurred validationError: Error) {
            if error == nil { error = validationError }
        }

        func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
            text += String(decoding: CDATABlock, as: UTF8.self)
        }
    }
}
