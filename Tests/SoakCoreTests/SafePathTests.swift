import XCTest
import SoakCore

final class SafePathTests: XCTestCase {
    private func path(_ key: String, file: StaticString = #filePath, line: UInt = #line) -> SafePath? {
        do { return try SafePath.fromKey(key) } catch {
            XCTFail("\(key.debugDescription) refused: \(error)", file: file, line: line)
            return nil
        }
    }

    private func refusal(_ key: String) -> PathError? {
        do { _ = try SafePath.fromKey(key); return nil } catch { return error }
    }

    // MARK: Accepted keys

    func testOrdinaryKeys() {
        XCTAssertEqual(path("a")?.components, ["a"])
        XCTAssertEqual(path("a/b/c.csv")?.components, ["a", "b", "c.csv"])
        XCTAssertEqual(path("a/b/c.csv")?.relativePath, "a/b/c.csv")
        XCTAssertEqual(path("a/b/c.csv")?.description, "a/b/c.csv")
    }

    func testAllowedSpecialCharacters() {
        for key in ["my file.txt", "a+b", "100%", "what?", "#tag", "a&b=c", "~user", "it's", "a b/c d",
                    "...", "..a", "a..", ".hidden", "a.", "a\\b", "-rf", "*", "[x]", "a:b", "😀/ü/日本"] {
            XCTAssertEqual(path(key)?.relativePath, key, key)
        }
    }

    func testUnicodeSpellingsAreDistinctPaths() {
        // NFC vs NFD: different bytes, different files on Linux; Swift's String == would merge them.
        let nfc = path("caf\u{E9}")!, nfd = path("cafe\u{301}")!
        XCTAssertNotEqual(nfc, nfd)
        XCTAssertEqual(Set([nfc, nfd]).count, 2)
        XCTAssertEqual(path("caf\u{E9}"), nfc)
        XCTAssertEqual(Set([nfc, path("caf\u{E9}")!]).count, 1)
    }

    func testCombiningMarkAfterSlashStillSplits() {
        // "/\u{301}" is a single Character; splitting must be on scalars, not Characters.
        XCTAssertEqual(path("a/\u{301}b")?.components, ["a", "\u{301}b"])
        XCTAssertEqual(refusal("a/\u{301}/../b"), .dotComponent(key: "a/\u{301}/../b", component: ".."))
        XCTAssertEqual(refusal("/\u{301}"), .absolute(key: "/\u{301}"))
        // A dot followed by a combining mark is a different name, not `.`.
        XCTAssertEqual(path(".\u{301}")?.components, [".\u{301}"])
    }

    func testComponentLengthLimitIsInBytes() {
        let max = String(repeating: "a", count: 255)
        XCTAssertEqual(path(max)?.components, [max])
        XCTAssertEqual(path("d/" + max + "/e")?.components.count, 3)
        // 127 two-byte scalars = 254 bytes OK; 128 = 256 bytes refused.
        XCTAssertNotNil(path(String(repeating: "é", count: 127)))
        let k = String(repeating: "é", count: 128)
        XCTAssertEqual(refusal(k), .componentTooLong(key: k, bytes: 256))
    }

    func testPathLengthLimit() {
        // 4095 bytes exactly: 16 components of 255 bytes + 15 slashes = 4095.
        let comp = String(repeating: "x", count: 255)
        let exact = Array(repeating: comp, count: 16).joined(separator: "/")
        XCTAssertEqual(exact.utf8.count, 4095)
        XCTAssertNotNil(path(exact))
        let over = exact + "/y"
        XCTAssertEqual(refusal(over), .pathTooLong(key: over, bytes: 4097))
        let k5000 = Array(repeating: String(repeating: "z", count: 99), count: 50).joined(separator: "/")
        XCTAssertEqual(k5000.utf8.count, 4999)
        XCTAssertEqual(refusal(k5000), .pathTooLong(key: k5000, bytes: 4999))
    }

    // MARK: Refused keys

    func testHostileKeysAreRefused() {
        let cases: [(String, PathError)] = [
            ("", .empty),
            ("..", .dotComponent(key: "..", component: "..")),
            (".", .dotComponent(key: ".", component: ".")),
            ("../x", .dotComponent(key: "../x", component: "..")),
            ("a/../../b", .dotComponent(key: "a/../../b", component: "..")),
            ("a/..", .dotComponent(key: "a/..", component: "..")),
            ("./a", .dotComponent(key: "./a", component: ".")),
            ("a/./b", .dotComponent(key: "a/./b", component: ".")),
            ("/abs", .absolute(key: "/abs")),
            ("/", .absolute(key: "/")),
            ("//x", .absolute(key: "//x")),
            ("a//b", .emptyComponent(key: "a//b")),
            ("a\0b", .nul(key: "a\0b")),
            ("\0", .nul(key: "\0")),
            ("a\nb", .controlCharacter(key: "a\nb", scalar: 0x0A)),
            ("a\rb", .controlCharacter(key: "a\rb", scalar: 0x0D)),
            ("\u{1}", .controlCharacter(key: "\u{1}", scalar: 0x01)),
            ("tab\there", .controlCharacter(key: "tab\there", scalar: 0x09)),
            ("esc\u{1B}[31m", .controlCharacter(key: "esc\u{1B}[31m", scalar: 0x1B)),
            ("del\u{7F}", .controlCharacter(key: "del\u{7F}", scalar: 0x7F)),
            ("a/\u{1F}", .controlCharacter(key: "a/\u{1F}", scalar: 0x1F)),
            (String(repeating: "a", count: 256), .componentTooLong(key: String(repeating: "a", count: 256), bytes: 256)),
            ("..\\..\\x/..", .dotComponent(key: "..\\..\\x/..", component: "..")),
        ]
        for (key, expected) in cases {
            XCTAssertEqual(refusal(key), expected, key.debugDescription)
            XCTAssertFalse(expected.isSkippable)
        }
    }

    func testNulIsReportedBeforeOtherProblems() {
        XCTAssertEqual(refusal("/../a\0"), .nul(key: "/../a\0"))
        XCTAssertEqual(refusal("/a\n"), .controlCharacter(key: "/a\n", scalar: 0x0A))
    }

    func testC1ControlsAndFormatCharactersAreAllowedButEscapedInMessages() {
        // Only C0 and DEL are refused; C1 and bidi overrides are legal names, escaped when printed.
        XCTAssertNotNil(path("a\u{85}b"))
        XCTAssertNotNil(path("evil\u{202E}txt.exe"))
        XCTAssertEqual(PathError.printable("evil\u{202E}txt"), "evil\\u{202E}txt")
        XCTAssertEqual(PathError.printable("a\u{85}b"), "a\\u{85}b")
    }

    // MARK: Directory markers

    func testDirectoryMarkersAreASkippableCase() {
        for key in ["dir/", "a/b/", "my folder/"] {
            let e = refusal(key)
            XCTAssertEqual(e, .directoryMarker(key: key))
            XCTAssertEqual(e?.isSkippable, true)
            if case .directoryMarker = e! {} else { XCTFail("pattern without bindings must match") }
        }
        // A marker is still checked for hostility first.
        XCTAssertEqual(refusal("../"), .dotComponent(key: "../", component: ".."))
        XCTAssertEqual(refusal("a//"), .emptyComponent(key: "a//"))
        XCTAssertEqual(refusal("/"), .absolute(key: "/"))
        XCTAssertEqual(refusal("a\n/"), .controlCharacter(key: "a\n/", scalar: 0x0A))
    }

    // MARK: Messages

    func testMessagesNameTheKeyEscapedAndSayWhy() {
        let e = refusal("a\nb")!
        XCTAssertEqual(e.description,
                       "refusing key \"a\\u{A}b\": it contains control character U+000A, unsafe in file names")
        XCTAssertFalse(e.description.contains("\n"))
        XCTAssertEqual(refusal("../x")!.description,
                       "refusing key \"../x\": it has a '..' component, which could escape the destination")
        XCTAssertTrue(refusal("/abs")!.description.contains("outside the destination"))
        XCTAssertTrue(refusal("")!.description.contains("empty key"))
        XCTAssertTrue(refusal("a//b")!.description.contains("empty component"))
        XCTAssertTrue(refusal("a\0")!.description.contains("\\u{0}"))
        XCTAssertTrue(refusal("x/")!.description.hasPrefix("skipping key \"x/\""))
        XCTAssertEqual(PathError.printable("say \"hi\" \\ ok"), "say \\\"hi\\\" \\\\ ok")
        XCTAssertEqual(refusal("a\nb")!.key, "a\nb")
    }

    func testMessagesForLongKeysAreTruncated() {
        let k = String(repeating: "q", count: 5000)
        let msg = refusal(k)!.description
        XCTAssertLessThan(msg.count, 400)
        XCTAssertTrue(msg.contains("…(5000 bytes)"))
        XCTAssertTrue(msg.contains("5000 bytes, over the 255-byte file name limit"))
    }

    // MARK: Resolving under a root

    func testResolvedUnderRoot() {
        let p = path("a/b.txt")!
        XCTAssertEqual(p.resolved(under: "/data/out"), "/data/out/a/b.txt")
        XCTAssertEqual(p.resolved(under: "/data/out/"), "/data/out/a/b.txt")
        XCTAssertEqual(p.resolved(under: "/data/out///"), "/data/out/a/b.txt")
        XCTAssertEqual(p.resolved(under: "/"), "/a/b.txt")
        XCTAssertEqual(p.resolved(under: "rel"), "rel/a/b.txt")
        XCTAssertEqual(p.resolved(under: ""), "a/b.txt")
        for root in ["/data/out", "/data/out/", "/", "rel", "./rel", "../up"] {
            XCTAssertTrue(SafePath.isContained(p.resolved(under: root), under: root), root)
        }
    }

    func testIsContained() {
        XCTAssertTrue(SafePath.isContained("/r/a", under: "/r"))
        XCTAssertTrue(SafePath.isContained("/r/./a//b", under: "/r/"))
        XCTAssertTrue(SafePath.isContained("/r/x/../a", under: "/r"))
        XCTAssertFalse(SafePath.isContained("/r", under: "/r"))            // the root itself
        XCTAssertFalse(SafePath.isContained("/r/", under: "/r"))
        XCTAssertFalse(SafePath.isContained("/r/..", under: "/r"))
        XCTAssertFalse(SafePath.isContained("/r/../x", under: "/r"))
        XCTAssertFalse(SafePath.isContained("/r/a/../../x", under: "/r"))
        XCTAssertFalse(SafePath.isContained("/rx/a", under: "/r"))         // prefix but not a component
        XCTAssertFalse(SafePath.isContained("r/a", under: "/r"))           // relative vs absolute
        XCTAssertFalse(SafePath.isContained("/a", under: "r"))
        XCTAssertFalse(SafePath.isContained("", under: "/r"))
        XCTAssertFalse(SafePath.isContained("/r/a", under: ""))
        XCTAssertTrue(SafePath.isContained("/../../r/a", under: "/r"))     // `/..` is `/`
        XCTAssertTrue(SafePath.isContained("../up/a", under: "../up"))
        XCTAssertFalse(SafePath.isContained("../a", under: "."))
        XCTAssertFalse(SafePath.isContained("../../x", under: ".."))
        XCTAssertFalse(SafePath.isContained("up/../../x", under: "up"))
        XCTAssertTrue(SafePath.isContained("../x", under: ".."))
        XCTAssertTrue(SafePath.isContained("a", under: "."))
        XCTAssertFalse(SafePath.isContained("/r/caf\u{E9}/x", under: "/r/cafe\u{301}"))  // bytes differ
    }

    func testEveryAcceptedKeyResolvesInsideTheRoot() {
        // Random keys over a hostile alphabet: whatever fromKey accepts must stay under the root.
        var rng = SeededRandom(seed: 99)
        let alphabet: [String] = ["a", "b", ".", "..", "/", "/", "\\", " ", "é", "\u{301}", "~", "%2e", "\n", "\0"]
        var accepted = 0
        for _ in 0..<5000 {
            let n = Int.random(in: 1...8, using: &rng)
            let key = (0..<n).map { _ in alphabet.randomElement(using: &rng)! }.joined()
            guard let p = try? SafePath.fromKey(key) else { continue }
            accepted += 1
            XCTAssertTrue(SafePath.isContained(p.resolved(under: "/root/dl"), under: "/root/dl"), key.debugDescription)
            XCTAssertFalse(p.components.contains { $0 == "." || $0 == ".." || $0.isEmpty || $0.contains("/") })
        }
        XCTAssertGreaterThan(accepted, 500)
    }

    // MARK: Conflicts

    func testFileAndDirectoryConflictDeeperWins() {
        let paths = ["a", "a/b", "c", "a/b/c", "d/e"].compactMap { path($0) }
        let r = PathConflicts.find(paths)
        XCTAssertEqual(r.files.map(\.relativePath), ["c", "a/b/c", "d/e"])
        XCTAssertEqual(r.conflicts.map(\.relativePath), ["a", "a/b"])
    }

    func testConflictsAreOrderIndependentAndKeepInputOrder() {
        let keys = ["x/y/z", "x", "w", "x/y", "v/1", "v"]
        var rng = SeededRandom(seed: 5)
        for _ in 0..<20 {
            let shuffled = keys.shuffled(using: &rng)
            let r = PathConflicts.find(shuffled.compactMap { path($0) })
            XCTAssertEqual(Set(r.files.map(\.relativePath)), ["x/y/z", "w", "v/1"])
            XCTAssertEqual(Set(r.conflicts.map(\.relativePath)), ["x", "x/y", "v"])
            XCTAssertEqual(r.files.map(\.relativePath), shuffled.filter { ["x/y/z", "w", "v/1"].contains($0) })
        }
    }

    func testNoFalseConflicts() {
        // Sibling names sharing a string prefix are not directories of each other.
        let paths = ["a", "ab/c", "a.b/c", "a-b", "a b/c", "aa/a"].compactMap { path($0) }
        let r = PathConflicts.find(paths)
        XCTAssertEqual(r.conflicts, [])
        XCTAssertEqual(r.files, paths)
        XCTAssertEqual(PathConflicts.find([]).files, [])
    }

    func testDuplicatesCollapse() {
        let paths = ["a/b", "c", "a/b", "c"].compactMap { path($0) }
        let r = PathConflicts.find(paths)
        XCTAssertEqual(r.files.map(\.relativePath), ["a/b", "c"])
        XCTAssertEqual(r.conflicts, [])
    }

    func testUnicodeSpellingsDoNotConflict() {
        let r = PathConflicts.find(["caf\u{E9}", "cafe\u{301}/x"].compactMap { path($0) })
        XCTAssertEqual(r.conflicts, [])
        XCTAssertEqual(r.files.count, 2)
    }

    func testConflictsScaleOnDeepAndManyKeys() {
        // Deep keys: each a chain of 1000 one-letter components, plus their own prefixes.
        var keys: [String] = []
        for i in 0..<50 {
            let deep = Array(repeating: "d", count: 1000).joined(separator: "/") + "/f\(i)"
            keys.append(deep)
        }
        keys.append(Array(repeating: "d", count: 999).joined(separator: "/"))  // a file that is a directory
        for i in 0..<20_000 { keys.append("flat/\(i % 100)/\(i)") }
        let paths = keys.compactMap { path($0) }
        let start = Date()
        let r = PathConflicts.find(paths)
        XCTAssertLessThan(Date().timeIntervalSince(start), 20)
        XCTAssertEqual(r.conflicts.count, 1)
        XCTAssertEqual(r.files.count, paths.count - 1)
    }
}
