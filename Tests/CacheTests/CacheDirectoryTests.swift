@testable import Cache
import Foundation
import XCTest

/// Telling soak's cache directories from everything else, without SQLite; the marker; the names
/// soak removes; the default directory.
final class CacheDirectoryTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "soak-cachedir-\(UUID().uuidString.prefix(8))"
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private func mkdir(_ p: String) throws { try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true) }
    private func write(_ p: String, _ s: String) throws { try Data(s.utf8).write(to: URL(fileURLWithPath: p)) }

    func testClassifiesMissingEmptyLostFoundMarkedAndForeign() throws {
        XCTAssertEqual(try CacheDirectory.classify(dir), .missing)
        try mkdir(dir + "/lost+found")
        XCTAssertEqual(try CacheDirectory.classify(dir), .empty)
        try write(dir + "/CACHEDIR.TAG.123.tmp", "half")  // another soak process marking it
        XCTAssertEqual(try CacheDirectory.classify(dir), .empty)
        try write(dir + "/notes.txt", "mine")
        guard case .foreign = try CacheDirectory.classify(dir) else { return XCTFail("a stranger's file") }
        try CacheDirectory.mark(dir)
        XCTAssertEqual(try CacheDirectory.classify(dir), .marked(version: CacheFormat.version))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/CACHEDIR.TAG.\(getpid()).tmp"))
        let text = try String(contentsOfFile: dir + "/CACHEDIR.TAG", encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("Signature: 8a477f597d28d172789f06886806bc55\n"), "a valid cache directory tag")
    }

    func testAnotherProgramsCacheTagIsForeign() throws {
        try mkdir(dir)
        try write(dir + "/CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n# made by cargo\n")
        guard case .foreign = try CacheDirectory.classify(dir) else { return XCTFail("someone else's tag") }
        XCTAssertThrowsError(try CacheDirectory.prepare(dir))
        XCTAssertThrowsError(try CacheDirectory.requireExisting(dir))
    }

    func testAFileIsNoCacheDirectory() throws {
        try mkdir(NSString(string: dir).deletingLastPathComponent)
        try write(dir, "x")
        XCTAssertThrowsError(try CacheDirectory.classify(dir))
        XCTAssertThrowsError(try CacheDirectory.prepare(dir + "/sub"))
    }

    /// A cache from before the marker: its index header says soak. Read from bytes only.
    func testLegacyIndexIsRecognisedByItsHeaderAlone() throws {
        var header = [UInt8](repeating: 0, count: 100)
        header.replaceSubrange(0..<16, with: Array("SQLite format 3\u{0}".utf8))
        header.replaceSubrange(60..<64, with: [0, 0, 0, 3])
        header.replaceSubrange(68..<72, with: [0x73, 0x6F, 0x61, 0x6B])  // "soak"
        XCTAssertEqual(IndexHeader.parse(header), .soak(version: 3))
        var other = header
        other[71] = 0x6C
        XCTAssertEqual(IndexHeader.parse(other), .other)
        other.replaceSubrange(68..<72, with: [0, 0, 0, 0])
        XCTAssertEqual(IndexHeader.parse(other), .unowned)
        XCTAssertEqual(IndexHeader.parse(Array("just text".utf8)), .other)

        try mkdir(dir + "/data")
        do {
            // An index a soak before the marker made (its WAL checkpointed when closed).
            let db = try SQLiteDatabase(path: dir + "/index.db")
            _ = try CacheFormat.prepare(db)
        }
        XCTAssertEqual(try CacheDirectory.classify(dir), .legacy(version: CacheFormat.version))
        try CacheDirectory.requireExisting(dir)
        XCTAssertEqual(try CacheDirectory.classify(dir), .marked(version: CacheFormat.version), "marked once recognised")
    }

    /// A cache whose every user was killed before the index was first checkpointed: its header
    /// is soak's only in the WAL, and is read from there (committed frames only).
    func testLegacyIndexWhoseHeaderIsOnlyInItsWALIsRecognised() throws {
        let live = dir + "/live", copy = dir + "/copy", torn = dir + "/torn"
        for d in [live, copy, torn] { try mkdir(d) }
        let db = try SQLiteDatabase(path: live + "/index.db")
        _ = try CacheFormat.prepare(db)
        try withExtendedLifetime(db) {
            for d in [copy, torn] {
                for f in ["index.db", "index.db-wal"] { try FileManager.default.copyItem(atPath: live + "/" + f, toPath: d + "/" + f) }
            }
        }
        XCTAssertNotEqual(try IndexHeader.read(copy + "/index.db"), .soak(version: CacheFormat.version), "checkpointed after all")
        XCTAssertEqual(try CacheDirectory.classify(copy), .legacy(version: CacheFormat.version))
        // Without its last (commit) frame the transaction never happened.
        let wal = torn + "/index.db-wal"
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: wal)[.size] as? NSNumber).int64Value
        XCTAssertEqual(truncate(wal, off_t(size - 10)), 0)
        guard case .foreign = try CacheDirectory.classify(torn) else { return XCTFail("an uncommitted header counted") }
    }

    /// A legacy index of a newer format, or a marker of one, is refused before SQLite opens it.
    func testNewerFormatsAreRefusedWithoutOpeningTheIndex() throws {
        try mkdir(dir)
        try write(dir + "/CACHEDIR.TAG", CacheDirectory.signature + "\n\(CacheDirectory.magic)\(CacheFormat.version + 1)\n")
        try write(dir + "/index.db", "not even SQLite: opening it would fail")
        XCTAssertThrowsError(try CacheDirectory.prepare(dir)) { XCTAssertTrue("\($0)".contains("newer"), "\($0)") }
        XCTAssertThrowsError(try DiskCache(directory: dir, create: false)) { XCTAssertTrue("\($0)".contains("newer"), "\($0)") }
    }

    /// A marked directory whose index.db someone replaced with their own file is refused too.
    func testAMarkedDirectoryWithAStrangersIndexIsRefused() throws {
        _ = try DiskCache(directory: dir)
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: dir + "/index.db" + suffix) }
        try write(dir + "/index.db", "my notes, not a database")
        XCTAssertThrowsError(try DiskCache(directory: dir)) { XCTAssertTrue("\($0)".contains("not a soak cache"), "\($0)") }
        XCTAssertEqual(try String(contentsOfFile: dir + "/index.db", encoding: .utf8), "my notes, not a database")
    }

    func testReadOnlyOpenCreatesNothing() throws {
        XCTAssertThrowsError(try DiskCache(directory: dir + "/a/b", create: false)) { XCTAssertTrue("\($0)".contains("no soak cache"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir))
        try mkdir(dir)
        XCTAssertThrowsError(try DiskCache(directory: dir, create: false))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    func testCreatesTheDirectoryAndItsParentsPrivate() throws {
        let deep = dir + "/a/b/soak"
        _ = try DiskCache(directory: deep)
        for d in [dir, dir + "/a", dir + "/a/b", deep] {
            var st = stat()
            XCTAssertEqual(stat(d, &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o700, d)
        }
        XCTAssertEqual(try CacheDirectory.classify(deep), .marked(version: CacheFormat.version))
    }

    func testDataFileNamesAreOnlyTheOnesSoakMakes() {
        for ok in ["1.0", "42.7", "9223372036854775807.0"] { XCTAssertTrue(DiskCache.isDataFileName(ok), ok) }
        for bad in ["01.0", "1.00", "-1.0", "+1.0", "1", "1.0.bak", ".0", "1.", "a.0", "results.csv", " 1.0", "１.0"] {
            XCTAssertFalse(DiskCache.isDataFileName(bad), bad)
        }
    }

    func testDefaultDirectory() {
        XCTAssertEqual(DiskCache.defaultDirectory(environment: ["CACHE_DIRECTORY": "/var/cache/soak:/var/cache/other",
                                                                "XDG_CACHE_HOME": "/x", "HOME": "/h"]), "/var/cache/soak")
        XCTAssertEqual(DiskCache.defaultDirectory(environment: ["CACHE_DIRECTORY": "relative", "XDG_CACHE_HOME": "/x"]), "/x/soak")
        XCTAssertEqual(DiskCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "rel", "HOME": "/h"]), "/h/.cache/soak")
        XCTAssertEqual(DiskCache.defaultDirectory(environment: ["HOME": "/h"]), "/h/.cache/soak")
    }
}
