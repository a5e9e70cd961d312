import XCTest
import SoakCore

final class KeyFilterTests: XCTestCase {
    private func selected(_ rules: [FilterRule], _ keys: [String]) -> [String] {
        let f = KeyFilter(rules)
        return keys.filter { f.includes($0) }
    }

    // The tree from the AWS CLI docs ("Use of Exclude and Include Filters"), relative to the prefix.
    private let awsTree = [".git/config", ".git/description", "foo.txt", "bar.txt", "baz.jpg"]

    func testNoRulesIncludesEverything() {
        XCTAssertEqual(selected([], awsTree), awsTree)
        XCTAssertTrue(KeyFilter([]).includesEverything)
    }

    func testAWSDocExcludeGitDirectory() {
        XCTAssertEqual(selected([.exclude(".git/*")], awsTree), ["foo.txt", "bar.txt", "baz.jpg"])
    }

    func testAWSDocOnlyIncludeChangesNothing() {
        // "by default, all files are included": an include alone changes nothing.
        XCTAssertEqual(selected([.include("*.txt")], awsTree), awsTree)
        XCTAssertTrue(KeyFilter([.include("*.txt")]).includesEverything)
    }

    func testAWSDocExcludeAllThenIncludeTxt() {
        XCTAssertEqual(selected([.exclude("*"), .include("*.txt")], awsTree), ["foo.txt", "bar.txt"])
    }

    func testAWSDocIncludeThenExcludeAllExcludesEverything() {
        XCTAssertEqual(selected([.include("*.txt"), .exclude("*")], awsTree), [])
    }

    func testAWSDocExcludeAllIncludeJpgAndTxt() {
        XCTAssertEqual(selected([.exclude("*"), .include("*.jpg"), .include("*.txt")], awsTree),
                       ["foo.txt", "bar.txt", "baz.jpg"])
    }

    func testLaterRuleOverridesEarlierBothWays() {
        let keys = ["a.txt", "b.txt", "c.log"]
        XCTAssertEqual(selected([.exclude("*"), .include("*.txt"), .exclude("b.txt")], keys), ["a.txt"])
        XCTAssertEqual(selected([.exclude("*.txt"), .include("b.txt")], keys), ["b.txt", "c.log"])
        XCTAssertEqual(selected([.exclude("b.txt"), .exclude("*"), .include("*")], keys), keys)
        // A rule that does not match never changes the decision.
        XCTAssertEqual(selected([.exclude("*.txt"), .include("*.csv")], keys), ["c.log"])
    }

    func testStarCrossesSlashes() {
        let keys = ["a.txt", "dir/a.txt", "dir/sub/a.txt", "dir/a.txt.gz"]
        XCTAssertEqual(selected([.exclude("*"), .include("*.txt")], keys), ["a.txt", "dir/a.txt", "dir/sub/a.txt"])
        XCTAssertEqual(selected([.exclude("dir/*")], keys), ["a.txt"])
        XCTAssertEqual(selected([.exclude("*"), .include("dir/*/a.txt")], keys), ["dir/sub/a.txt"])
    }

    func testPatternIsAnchoredAtBothEnds() {
        let p = KeyFilter.Pattern("a.txt")
        XCTAssertTrue(p.matches("a.txt"))
        XCTAssertFalse(p.matches("xa.txt"))
        XCTAssertFalse(p.matches("a.txtx"))
        XCTAssertFalse(p.matches("dir/a.txt"))
        XCTAssertTrue(KeyFilter.Pattern("").matches(""))
        XCTAssertFalse(KeyFilter.Pattern("").matches("a"))
        XCTAssertTrue(KeyFilter.Pattern("*").matches(""))
        XCTAssertTrue(KeyFilter.Pattern("**").matches("a/b"))
    }

    func testQuestionMarkIsExactlyOneCharacterIncludingSlash() {
        let p = KeyFilter.Pattern("a?c")
        XCTAssertTrue(p.matches("abc"))
        XCTAssertTrue(p.matches("a/c"))
        XCTAssertFalse(p.matches("ac"))
        XCTAssertFalse(p.matches("abbc"))
    }

    func testCaseSensitive() {
        XCTAssertFalse(KeyFilter.Pattern("*.TXT").matches("a.txt"))
        XCTAssertFalse(KeyFilter.Pattern("[A-Z]").matches("a"))
    }

    func testCharacterClasses() {
        func m(_ p: String, _ s: String) -> Bool { KeyFilter.Pattern(p).matches(s) }
        XCTAssertTrue(m("[abc].txt", "b.txt"))
        XCTAssertFalse(m("[abc].txt", "d.txt"))
        XCTAssertTrue(m("[!abc].txt", "d.txt"))
        XCTAssertFalse(m("[!abc].txt", "a.txt"))
        XCTAssertTrue(m("log-[0-9][0-9]", "log-42"))
        XCTAssertFalse(m("log-[0-9][0-9]", "log-4x"))
        XCTAssertTrue(m("[a-cx-z]", "y"))
        XCTAssertFalse(m("[a-cx-z]", "m"))
        // `]` first is a member; with `!` too.
        XCTAssertTrue(m("[]]", "]"))
        XCTAssertTrue(m("[]a]", "a"))
        XCTAssertFalse(m("[!]]", "]"))
        XCTAssertTrue(m("[!]]", "x"))
        // `-` first or last is literal.
        XCTAssertTrue(m("[a-]", "-"))
        XCTAssertTrue(m("[-a]", "-"))
        XCTAssertTrue(m("[!-a]", "b"))
        XCTAssertFalse(m("[!-a]", "-"))
        // Reversed ranges match nothing; a negated empty set matches anything.
        XCTAssertFalse(m("[z-a]", "z"))
        XCTAssertFalse(m("[z-a]", "m"))
        XCTAssertTrue(m("[!z-a]", "q"))
        XCTAssertTrue(m("[xz-a]", "x"))
        // `^` is not negation; `\` is not an escape.
        XCTAssertTrue(m("[^a]", "^"))
        XCTAssertTrue(m("[^a]", "a"))
        XCTAssertTrue(m("a\\*", "a\\bcd"))
        XCTAssertFalse(m("a\\*", "a*"))
        // A class matches `/` like anything else.
        XCTAssertTrue(m("a[/]b", "a/b"))
        // Unclosed `[` is literal.
        XCTAssertTrue(m("[abc", "[abc"))
        XCTAssertTrue(m("a[", "a["))
        XCTAssertTrue(m("[!", "[!"))
        XCTAssertTrue(m("[]", "[]"))
        XCTAssertTrue(m("[*", "[xyz"))
        XCTAssertTrue(m("[!]", "[!]"))
    }

    func testUnicodeIsMatchedPerScalar() {
        func m(_ p: String, _ s: String) -> Bool { KeyFilter.Pattern(p).matches(s) }
        XCTAssertTrue(m("?", "é"))                 // precomposed U+00E9: one scalar
        XCTAssertFalse(m("?", "e\u{301}"))         // decomposed: two scalars
        XCTAssertTrue(m("??", "e\u{301}"))
        XCTAssertTrue(m("*.txt", "日本語/ファイル.txt"))
        XCTAssertTrue(m("日本語/*", "日本語/ファイル.txt"))
        XCTAssertTrue(m("[α-ω]*", "λόγος"))
        XCTAssertFalse(m("[α-ω]*", "Λόγος"))
        XCTAssertTrue(m("*🎉", "party 🎉"))
        XCTAssertTrue(m("?", "🎉"))
        // NFC and NFD spellings are different keys (S3 compares bytes), even though Swift's `==` says equal.
        XCTAssertFalse(m("caf\u{E9}", "cafe\u{301}"))
        XCTAssertFalse(m("[\u{E9}]", "e\u{301}"))
    }

    func testSpecialCharactersAreLiteral() {
        func m(_ p: String, _ s: String) -> Bool { KeyFilter.Pattern(p).matches(s) }
        XCTAssertTrue(m("a+b (1).txt", "a+b (1).txt"))
        XCTAssertTrue(m("%20&=~'#", "%20&=~'#"))
        XCTAssertTrue(m(".*", ".hidden"))
        XCTAssertFalse(m(".*", "x.hidden"))
        XCTAssertTrue(m("a.b", "a.b"))
        XCTAssertFalse(m("a.b", "axb"))       // `.` is not a regex wildcard
        XCTAssertTrue(m("(a|b)", "(a|b)"))
        XCTAssertFalse(m("(a|b)", "a"))
        XCTAssertTrue(m("$x^", "$x^"))
    }

    func testPathologicalPatternsStayFast() {
        let longA = String(repeating: "a", count: 20_000)
        let patterns = ["*a*a*a*a*a*a*a*a*a*a*b", "*" + String(repeating: "a*", count: 40) + "b",
                        String(repeating: "*?", count: 30) + "b", "*[!a]"]
        let start = Date()
        for p in patterns {
            XCTAssertFalse(KeyFilter.Pattern(p).matches(longA), p)
            XCTAssertTrue(KeyFilter.Pattern(p).matches(longA + "b"), p)
        }
        // Long literal prefix mismatch after many stars.
        XCTAssertFalse(KeyFilter.Pattern("*" + String(repeating: "a", count: 500) + "b").matches(longA))
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertLessThan(elapsed, 10, "matching must be polynomial, took \(elapsed) s")
    }

    /// 500 random pattern/key pairs whose expected results come from CPython's
    /// `fnmatch.fnmatchcase` (the AWS CLI's matcher), generated with a fixed seed.
    func testAgreesWithPythonFnmatch() {
        var failures: [String] = []
        for (p, k, expected) in Self.pythonTable where KeyFilter.Pattern(p).matches(k) != expected {
            failures.append("pattern \(p.debugDescription) key \(k.debugDescription): expected \(expected)")
        }
        XCTAssertEqual(failures, [])
        XCTAssertEqual(Self.pythonTable.count, 500)
    }

    func testRelativeKeyIsByteExact() {
        XCTAssertEqual(KeyFilter.relativeKey("data/a/b.csv", prefix: "data/"), "a/b.csv")
        XCTAssertEqual(KeyFilter.relativeKey("data/a", prefix: ""), "data/a")
        XCTAssertNil(KeyFilter.relativeKey("other/a", prefix: "data/"))
        // A combining mark after the `/` joins it into one Character; bytes still split correctly.
        XCTAssertEqual(KeyFilter.relativeKey("data/\u{301}x", prefix: "data/"), "\u{301}x")
        // NFC prefix does not strip an NFD key.
        XCTAssertNil(KeyFilter.relativeKey("cafe\u{301}/x", prefix: "caf\u{E9}/"))
    }

    func testRulePatternAccessorAndSendable() {
        XCTAssertEqual(FilterRule.include("a").pattern, "a")
        XCTAssertEqual(FilterRule.exclude("b").pattern, "b")
        let f = KeyFilter([.exclude("*"), .include("*.txt")])
        let asSendable: any Sendable = f   // compile-time: shareable across threads
        XCTAssertNotNil(asSendable)
        XCTAssertEqual(f.rules, [.exclude("*"), .include("*.txt")])
        XCTAssertFalse(f.includesEverything)
    }

    static let pythonTable: [(String, String, Bool)] = [
        ("a-ac*!!", "a-ac/!!", true),
        ("é.*/b!?", "é./b!!", true),
        ("éz.é/.a", "", false),
        ("", "", true),
        (".a*", ".a]-[", true),
        ("é?]-cab", "éé]-cab", true),
        ("?ab.*b]b", "bac", false),
        ("]b.é**", "]b.éb.az", true),
        ("/", "]", false),
        ("/é-*!-*", "/zczbz", false),
        ("*a?a*.", "a-az.", true),
        ("a", "]", false),
        ("a*.[", "bbb", false),
        (".é*", ".éé!", true),
        ("a./a]/é", "a./a]/é", true),
        ("z*/", "zc/", true),
        (".b]abba", ".b]ab^a", false),
        ("?]ac.!", "/]ac.!", true),
        ("/", "/", true),
        ("?", "-", true),
        ("?", ".", true),
        ("-./b[", "-./b[", true),
        ("ézz-.", "aa]é", false),
        ("aa.é", "aaéé", false),
        ("bb", "bb", true),
        ("", "^^/éé", false),
        ("é", "a", false),
        (".a.é]].", "ca.é]].", false),
        ("?", "éz^^!", false),
        ("!!a-b-*", "!!a-b-!b", true),
        ("zb!", "zb!", true),
        ("?ca[?/é", "[ca[//é", true),
        ("éc!!c", "éc!!c", true),
        ("*é]*", "-", false),
        ("*.c[*/", "a^.c[/", true),
        ("a/b!", "a/b!", true),
        ("]é-!é[", "]é-!é[", true),
        ("[baa?a.", "[b.a^a.", false),
        ("!*a*a?", "!aaac", true),
        ("bé**a", "bé^a", true),
        ("za/*?*[-", "za/z^b[-", true),
        ("/!!*éc", "[!c", false),
        ("*a[![é*b", "a[![é-b", true),
        ("?", "é", true),
        ("ba![-]*?", "ba!-a/[é", true),
        ("!/", "[c^]]", false),
        ("*", "^[", true),
        ("-ac-??é]", "!-./[[", false),
        (".!*]", ".!]", true),
        ("-*.b!b", "-.b!b", true),
        ("]c*c]?*", ".céc]z[éb", false),
        ("z*", "", false),
        ("/*a", "/^éb", false),
        ("z.ba-.?", "z.ba-.^", true),
        ("a]é]a-", "a]é]a-", true),
        ("é*-*a-..", "^", false),
        ("c/[.[", "-", false),
        ("cb/", "^", false),
        ("?", "z", true),
        ("-*z/*]", "-zé]", false),
        ("z", "z", true),
        ("éa**b!ba", "éa.-/b!ba", true),
        (".", ".", true),
        ("b*b[]!]", "b-!éb]", true),
        ("]!", "]!", true),
        ("./b", "^/b", false),
        ("..*-.[", ".b", false),
        ("ac", "ac", true),
        ("z[*]*/]*", "z*]b/]", true),
        ("[*é]", "é", true),
        ("é*zb*].", "ézb.].", true),
        ("a**é]ab?", "a[[[!bé]abc", true),
        ("-", "-", true),
        ("]!", "][!!az", false),
        ("]?-].?[", "]]c].c[", false),
        ("aa**", "aazaé^", true),
        ("b*c*]", "b-ac]", true),
        ("/a*.zba", "/ab-a.zba", true),
        ("b[", "b[", true),
        (".?é.é][", ".[é.é][", true),
        ("?z", "][", false),
        ("??.éz", "!-.éz", true),
        ("**-", "c", false),
        ("a.ab*-", "a.ab-", true),
        ("-*", "-]]", true),
        ("[!z/a", "b]!-]z", false),
        ("]*/[", "].[/[", true),
        ("]é", "]b", false),
        ("b]..!aé!", "b]..!aé!", true),
        ("?", "c", true),
        ("!z*z", "!z-z", true),
        ("[cb[z", "[cb[z", true),
        ("!-*?", "!-z^", true),
        ("b[a", "b[a", true),
        (".]**z.", ".][/!/z.", true),
        ("aéa*", "aéa[b", true),
        ("zbc[", "zbc[", true),
        ("bz", "-^-", false),
        ("*c-[*!]", "c/c-*", true),
        ("aa*]a", "aa[ca]a", true),
        ("", "z/-", false),
        ("é]", "é]", true),
        ("]-??ca", "]-^bca", true),
        ("*c", "c", true),
        ("/[*", "/[![-", true),
        ("]/c*", "[[].]", false),
        ("c[é-*b", "czé-zb", false),
        ("*-*?*aéc", "-é]-^//zaéc", true),
        ("ca*-", "ca[[/", false),
        ("a/", "]/", false),
        ("bz.-a-?", "bz.-a--", true),
        ("*", "a", true),
        ("]-!/a?[?", "]-!/a[[.", true),
        ("[", "c", false),
        ("z*abé!a", "^]-.!", false),
        ("!", "!", true),
        ("c./", "c./", true),
        ("z?[*]-éb", "z-*-éb", true),
        (".!zé", ".!zé", true),
        ("b", "/", false),
        ("]aa", "]aa", true),
        ("*", "", true),
        ("]*b[ca", "]^b[ca", true),
        ("![c].a", "!c.a", true),
        ("é.-", "é.-", true),
        ("?é!b-", "[é!b-", true),
        ("ab.z", "ab.z", true),
        ("-*[.", "-![.", true),
        ("zzac*.aé", "zza!.aé", false),
        ("z[[bca", "z[[bca", true),
        ("!", "-", false),
        ("--b-c?/c", "--b-cé/c", true),
        ("c", "cé", false),
        ("*.[", "!", false),
        ("*b!a]/*c", "/.c^z", false),
        ("!a/-]b", "!a/-/b", false),
        ("*.c[", ".c[", true),
        ("c.cz.*", "c.cz.]]", true),
        ("a]b.bc", "[[", false),
        ("]ca[ca", "]ca[ca", true),
        ("z].[**", "z].[b", true),
        ("-a]", "^b[", false),
        ("-?é", "--é", true),
        ("a-].*", "a-].!b/", true),
        ("c", "c", true),
        ("a[/b", "a[/b", true),
        ("]/[z.*a?", "]/[z..é-]", false),
        ("?ac", "a]c", false),
        ("*-é**caé", ".z-ébzb/caé", true),
        ("?/z", "céz", false),
        ("cb.-*?cc", "cb.-./cc", true),
        ("!", "[b[", false),
        ("-?]*", "-/]-a", true),
        ("acc!a/", "acc!a/", true),
        ("[é!*a", "[é!!a", true),
        ("b.", "b.", true),
        ("*?*z*z*?", "!!.a-zzzé/!", true),
        ("!z?a*abb", "c[!^", false),
        ("./a", ".!a", false),
        ("*?*.!béa", ".-/]aéz.!béa", true),
        ("za/", "za/", true),
        ("/z", "/z", true),
        ("c-/b]-", "c-/b]-", true),
        ("a", "a", true),
        ("??b", "-zb", true),
        ("[?[", "-a/z", false),
        ("!a", "!a", true),
        ("]*a*][", "]]a.][", true),
        ("!!éé/a!", "!!éé/a!", true),
        (".a-/", ".a-/", true),
        ("?b[", "^b[", true),
        ("/**za", "", false),
        ("a]!ba", ".[", false),
        ("!a*", "!za", false),
        ("-z/-z-?", "-z/-z-]", true),
        ("c*", "^]z/", false),
        ("-a[*b?", "-a[/ba", true),
        (".a**z?é", ".a[cbzéé", true),
        ("b]!a!]", "]^", false),
        ("*/c]", "é/c]", true),
        ("-bz", "-bz", true),
        ("!.", "!.", true),
        ("zcac", "zcac", true),
        ("c", "!", false),
        ("!z[c", "!zéc", false),
        (".??aé", "]z!éé", false),
        ("*bé", "!zb]é", false),
        ("c]a*/é", "c]a]é/é", true),
        ("?*?", "-[", true),
        ("aé*-b.a", "éé.é-b.a", false),
        ("z]é", "/]é", false),
        (".z!*.", ".z!.é^.", true),
        ("*é*[[z/", "/bbb^", false),
        ("ba!-", "ba!-", true),
        (".a", ".a", true),
        ("?]-z*", ".]-zé^", true),
        ("[a", "[a", true),
        (".]", "./", false),
        ("*]", "]c]", true),
        ("?z", ".z", true),
        ("]cé/a/", "-cé/a/", false),
        ("[z-*", "[z-a[", true),
        ("[b", "[b", true),
        ("*]z.", "!]z.", true),
        ("-?*", "/b[", false),
        ("c!]b", "c!]b", true),
        ("../?", "../.", true),
        ("a/bac*?é", "a/bzcé]é", false),
        ("a][*-]-", "a]--", true),
        (".aza/aa", "bcb.", false),
        ("a*-?b", "a-ab", true),
        ("?***cz!]", "[z-z!acz!]", true),
        ("]z[-é", "]z[-é", true),
        ("[??bcé[", "[-ébcé[", true),
        ("?é*/[b//", "/éaaz/[b//", true),
        ("b[-a**", "b[-aé", true),
        (".", "]-]", false),
        ("*zc/a?", "é/ézc/a[", true),
        ("zé", "zé", true),
        ("c!azé", "c!azé", true),
        ("b", "^]zc]", false),
        ("a]-*].", "a]-].", true),
        ("!?.a.ac", "![.a.ac", true),
        ("z.[*", "zc[a/]", false),
        ("ab", "ab", true),
        ("b/aa", "b/]a", false),
        ("-aa", "-aa", true),
        ("bb-", "bb-", true),
        ("b*!", "[b/é/b", false),
        ("ac[a*", "", false),
        ("/.]aaé", "/.]aaé", true),
        ("b", "[", false),
        ("cz*-é", "aé^", false),
        ("aé?é.", "a/-é.", false),
        ("a/?b?[.", "^/.b-[.", false),
        ("zz[", "z-/bc.", false),
        ("[a.]?!", "aé!", true),
        ("*!.b?b", "bc", false),
        ("*c!]*z]", "cbéc!]é.!z]", true),
        ("?éza", "-é/a", false),
        ("]]?[", "]]![", true),
        ("b*[", "b[", true),
        ("caaaé", "caaaé", true),
        ("/!-[!", "/!-[!", true),
        ("a*]", "ac]", true),
        ("*éc*-.", "/[écc^b-.", true),
        ("*cb]!/a", "abcb]!/a", true),
        ("--b**b?-", "--b/.c-", false),
        ("[***", "[a-!/[b/b[", true),
        ("].", "].", true),
        ("]", "/", false),
        ("-.a]", "-.a]", true),
        ("é*a*a]]?", "é[baé]-a]]c", true),
        ("/.-ccb]é", "/.-ccb]é", true),
        ("*[b]", "/czb", true),
        ("]-[]a*éb", "]-[]aéb", true),
        ("*-z-!za", "-z-!éa", false),
        ("[.z", "[.z", true),
        ("b-**[aa", "b-!.céz[ac", false),
        ("b", "é", false),
        ("*?", "[", true),
        ("c[", "![", false),
        ("aaz!][éé", "b/b]c/", false),
        ("*!é]*b", "!é]b", true),
        ("éa-zb", "éa-zb", true),
        ("bca*b][-", "bc]b][-", false),
        ("ac]c]*", "ac]c]]z^", true),
        ("*!b-za/*", "a!b-za//c", true),
        ("é]!..a![", "é]!..aé[", false),
        ("z].a?", ".z-^-z", false),
        ("!]!b*/*.", "!]!b[//.", true),
        ("./-![", "./-![", true),
        ("*?b**", "[^^b/!", true),
        ("[b*z*", "[bb-za/", true),
        ("é???", "é..b", true),
        ("/a]/aa-a", "/a[/aa-a", false),
        ("?a]c", "ca]c", true),
        ("!!é", "!!é", true),
        ("?.z[c*b-", "c.z[cb-", true),
        ("*", "é/", true),
        ("", "b/az!", false),
        ("cé", "[[bz[c", false),
        ("b-", "b-", true),
        ("czb", "czb", true),
        ("b/c??[*z", "b/c/[[zz", true),
        ("c/b*-", "c/.-", false),
        ("a/", "a/", true),
        ("]a*", "]a-é", true),
        ("?a.", "^a.", true),
        ("!é*cc", "!é/]c", false),
        ("*c[", "![c[", true),
        ("b?-", "-^-", false),
        ("bbé*-*!*", "bbéé-bb!/zc", true),
        ("**]c?", "aa]]ca", true),
        ("]", "b", false),
        ("/c!", "é/", false),
        ("/*", "^", false),
        ("caz", "]éé^b", false),
        ("/ab/", "/ab/", true),
        ("?", "[", true),
        ("bbé*", "bbcc[", false),
        ("?", "!", true),
        ("!a*/!éa", "!aza./!éa", true),
        ("aa*", "aa!cb", true),
        ("?a.-[", ".a.-[", true),
        ("/[/c.", "/[/c.", true),
        (".!?[c!*é", "c/][[.", false),
        ("cz", "cz", true),
        ("/z[?éb", "/z[aéb", true),
        ("b!zc*-é]", "b!zcz.]-é]", true),
        ("ab[!é!a", "ab[!é!a", true),
        ("-!ab", "-!aa", false),
        ("*cé-", "[acé-", true),
        ("a!/?[aé", "a!/é[aé", true),
        ("za!", "/c-^^", false),
        ("*?*c", ".^-ac", true),
        ("!*é.é", "bc/b.", false),
        ("a]??", "a]^.", true),
        ("zz", "zz", true),
        ("*]**aa", "c]-]^éaaa", true),
        ("***é.*b", "é].acbé.éab", true),
        ("-..?", "aéb.-[", false),
        ("babaz-a", "babaz-a", true),
        ("?*c", "-ézbc", true),
        ("?-aaé", "--aaé", true),
        ("*!c", "", false),
        ("]!é]*é", "]!é]![é", true),
        ("/*a", "/[a", true),
        ("?**éa", "]b]-éa", true),
        ("a/]!.*z", "a/]!.cz", true),
        ("abz./*", "abz./z^z", true),
        (".b**az!", "écbé.a", false),
        ("aaz", "aaz", true),
        ("ac*?a*", "ac]-éa-]z", true),
        (".*b!", ".czcb!", true),
        ("cébz*?", "c[bzz-c.", false),
        (".z]aa", ".z]aa", true),
        ("b.]*", "-^", false),
        ("a!.aa*", "b!^", false),
        ("z[.!?", "z[.!c", true),
        ("/a/**.[*", "/a/!é.[é/c", true),
        ("é!?c*]é", "é!!c]é", true),
        ("-!.a?[]*", "-!.aa-][^", false),
        ("z?/[.-", "z[/[.-", true),
        ("/*?éaa", "-", false),
        ("ab", "a^-.a", false),
        ("az.aéa?", "!", false),
        ("z[[*c", "]^éa]!", false),
        (".-[*", ".-[/c", true),
        ("*!c]/", "c/]é", false),
        ("**c[a", "éa-", false),
        ("zéaazzb", "zéaazzb", true),
        (".-a]b*b", ".-a]b/b", true),
        ("a!*?*", "a!-éa.", true),
        ("?]./?", "/]./b", true),
        ("*?-cc*a.", "^^[--cc[é[a.", true),
        ("**ca*?a?", "ca.[-éa[", true),
        ("z!b]-", "z!b]-", true),
        ("bb*", "bb[z", true),
        ("aa?-", "aab-", true),
        ("a", "z^cb][", false),
        (".*-.a.", ".-.a.", true),
        ("é!*", "[é!c!", false),
        (".b*", ".b/[", true),
        ("?*", "-/aéa", true),
        ("**", "].b", true),
        ("]caé", "]caé", true),
        ("]!", "].", false),
        ("ébb", "ébb", true),
        ("?caézb", "cc^z^", false),
        ("!aa]!", "!aa]!", true),
        ("[]/.éc./", "[]/]éc./", false),
        ("!za", "!za", true),
        ("!*a].]", "!^aa].]", true),
        ("/bza/a", "/bza/a", true),
        ("?/*", "z/b", true),
        ("b/", "zz/z!^", false),
        ("b]a!?a.a", "b]a!éa.a", true),
        ("c*.a]?", "c/.a]z", true),
        ("czbcé", "cz-cé", false),
        ("aa[*?b", "aa[^b", true),
        ("..é.c", "-]", false),
        ("./?]", "z/b]", false),
        ("*[.]", "ca..", true),
        ("*]-.", "]-a", false),
        ("é?!-é", "éz!-é", true),
        ("*!/", "cz.!/", true),
        ("*[zz*!", "c[zz/!", true),
        ("éa", "éa", true),
        ("z*.éé[éa", "z.éé[.a", false),
        ("-!aa", "]!aa", false),
        ("ba.", "baé", false),
        ("[", "[", true),
        ("-é.*aa", "-é..]aa", true),
        ("!*a!!a", "![a!/a", false),
        (".[éb*", ".[éb", true),
        ("]*?]cé!c", "]ébba]cé!c", true),
        ("bé/!/.]b", "bé/!/.]b", true),
        ("é??[]cc", "éaa[]cc", true),
        ("////bcc", "////b/c", false),
        ("[!/", "é!/", false),
        ("]*", "]", true),
        ("!]cc*", "!]cc", true),
        ("!!", "!!", true),
        ("*éb", "]éb", true),
        ("az]cc", "az]c-", false),
        ("a-", "a-", true),
        ("*/--", "!/--", true),
        ("[é]", "-]bb[", false),
        ("*", "]c]", true),
        ("b/*..", "b/..", true),
        (".*a.*c*]", ".zéa.cé]]", true),
        ("*zé/", "cca", false),
        ("][.b", ".", false),
        ("ébz/é-", "", false),
        ("?**!*bcb", "]...^!a-cbcb", true),
        ("!*ab]", "!ab!", false),
        ("[[a-]![", "-![", true),
        ("-é", "-!", false),
        ("?[", ".[", true),
        ("éa!/*[é", "éa!/[^^[é", true),
        ("ba/zaa/", ".b]/]/", false),
        ("é*.[", "éza.[", true),
        ("bcc*b[", "bcczb[", true),
        ("]!a", "]!a", true),
        ("-", "a", false),
        ("aé]", "aé]", true),
        ("/z*aa!c", "/zaa!c", true),
        ("*ccbca", "éccbca", true),
        ("*[]!a!*[", "!^[]!a!/[", true),
        ("ca-bc", "ca-bc", true),
        ("ab[*[", "ab[a[", true),
        ("[//b[a", "[//b[a", true),
        ("za", "za", true),
        ("!*bza", "!]ébbza", true),
        ("c*bc", "c[-bc", true),
        ("b!?", "", false),
        ("*bc]a", "", false),
        ("*]]b", "bz-]]b", true),
        ("!*!b*", "!.[.!b![.", true),
        ("éa[.!*]", "é/.", false),
        ("*", "!a^", true),
        ("a!--/", "a!--c", false),
        ("b[]*?-]", "b[]c.-]", false),
        ("c.a--aac", "c.a--aac", true),
        (".-cca.!/", ".-cca.!/", true),
        ("c.", "c.", true),
        ("bzé?ac]", "bzé-ac]", true),
        ("cz**?b", "cz^a!ab", true),
        ("[/b", "[/b", true),
        ("b*!/?-é", "bé!/z-é", true),
        ("-]/.?ac", "--/.[ac", false),
        ("cé!.z[é", "ca", false),
        ("bc", "bc", true),
        ("-b!?", "!]/^é", false),
        ("*?-.éz[z", ".a-.éz[z", true),
        ("aéa[.é", "aéa[.é", true),
        ("ac.é!aé", "ac.é!aé", true),
        ("[aéb*c", "[aéb]-/c", true),
        ("zb/a]c*a", "zb/a]cza", true),
        ("é*", "é^", true),
        ("[b", "cb", false),
        ("caé!.!*b", "]]a!!!", false),
        ("aa", "aa", true),
        (".!!.*", "!-]cz^", false),
        ("a.][?", "a.][b", true),
        ("zbb.-]", "zbb.c]", false),
        (".-?", ".-a", true),
        ("cz?[!a", "cz.[!a", true),
        ("b][c?", "^!/.^z", false),
        ("zba", "!/!b", false),
        (".!/][-?", ".!/][-]", true),
        ("z", "/", false),
        ("!.][", "-^^.", false),
        ("b..*b", "b..-b", true),
        (".aa*/aac", ".aa]]a/aac", true),
        ("aé-a", "bé^/^", false),
        ("[z*a./", "[z.^a./", true),
        ("b*][*", "b][", true),
        ("a!/caz.", "a!/caz.", true),
        ("?*b*", "a]bzé[", true),
        ("?a*-]", "aa!!-]", true),
        ("*[", "-b", false),
        ("-!a", "-b/.ca", false),
        ("", "bé", false),
        ("*.aé*b", "a/.aéb^.b", true),
        ("*", "a[", true),
        ("*z!/z!**", "-[z!/z!za", true),
        ("", "]^z-/b", false),
        ("-*a*/!b", "-zaca/!b", true),
        ("éc*a", "éc]/a", true),
        ("aéa/éc*é", "aéa/éc]é", true),
        ("[[*", "[[]./", true),
        ("c*c", "![", false),
        ("é", "[!/[", false),
        ("b[!b*]!a", "b*!a", false),
        ("*a*b..]", "]^b/b", false),
        ("bé]b/bab", "bé]b/bab", true),
        ("é/a?ca..", "c[aa", false),
        ("[]b", "!", false),
    ]
}
