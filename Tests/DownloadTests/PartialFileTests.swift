/// `PartialFile`: hashed temporary names under `DEST/.soak-partial/`, and the resume state.
#if canImport(Glibc)
@testable import Download
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import XCTest
@testable import Engine
import SoakCore

final class PartialFileTests: XCTestCase {
    private var dest = ""

    override func setUpWithError() throws {
        dest = FileManager.default.temporaryDirectory
            .appendingPathComponent("soak-partial-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dest + "/" + PartialFile.directoryName,
                                                withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if !dest.isEmpty, FileManager.default.fileExists(atPath: dest) {
            try FileManager.default.removeItem(atPath: dest)
        }
    }

    private var partialDir: String { dest + "/" + PartialFile.directoryName }

    private func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    private func writeData(_ p: PartialFile, size: Int) {
        XCTAssertTrue(FileManager.default.createFile(atPath: p.dataPath, contents: Data(repeating: 0xAB, count: size)))
    }

    private func state(key: String = "dir/file.bin", size: Int64 = 40, partSize: Int64 = 10,
                       done: Set<Int> = [0, 2]) -> PartialState {
        PartialState(key: key, etag: "abc-4", size: size, partSize: partSize, done: done)
    }

    /// Everything in the partial directory.
    private func listing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: partialDir).sorted()
    }

    /// The state is written through one fixed temporary name and renamed: nothing else ever
    /// appears in the directory (a kill -9 mid-write can leave only `<state>.tmp`, which the
    /// next save replaces).
    func testSavingStateLeavesOnlyTheStateFile() throws {
        let p = PartialFile(destination: dest, relativePath: "a/b.bin")
        for i in 0..<5 { try p.saveState(state(done: Set(0..<i))) }
        XCTAssertEqual(try listing(), [URL(fileURLWithPath: p.statePath).lastPathComponent])
        XCTAssertEqual(try JSONDecoder().decode(PartialState.self, from: Data(contentsOf: URL(fileURLWithPath: p.statePath))).done,
                       Set(0..<4))
    }

    // MARK: - Names

    func testNamesAreHashesInsideThePartialDirectory() {
        let p = PartialFile(destination: dest, relativePath: "photos/2024/IMG_0001.jpg")
        for (path, ext) in [(p.dataPath, ".part"), (p.statePath, ".state")] {
            XCTAssertEqual((path as NSString).deletingLastPathComponent, partialDir)
            let name = (path as NSString).lastPathComponent
            XCTAssertTrue(name.hasSuffix(ext), name)
            let stem = name.dropLast(ext.count)
            XCTAssertEqual(stem.count, 40, name)
            XCTAssertTrue(stem.allSatisfy { $0.isHexDigit && !$0.isUppercase }, name)
            XCTAssertFalse(path.contains("IMG_0001"), path)
            XCTAssertFalse(path.contains("photos"), path)
        }
        // Data and state share the stem.
        XCTAssertEqual(p.dataPath.dropLast(".part".count), p.statePath.dropLast(".state".count))
    }

    func testHostileKeysCannotShapeThePath() {
        for rel in ["../../x", "../../../etc/passwd", "/abs/olute", "a/../../b", "..", ".", "", "x\u{0}y",
                    String(repeating: "long-", count: 200)] {
            let p = PartialFile(destination: dest, relativePath: rel)
            for path in [p.dataPath, p.statePath] {
                XCTAssertTrue(path.hasPrefix(partialDir + "/"), "\(rel.debugDescription) → \(path)")
                let name = String(path.dropFirst(partialDir.count + 1))
                XCTAssertFalse(name.contains("/"), "\(rel.debugDescription) → \(path)")
                XCTAssertFalse(name.contains(".."), "\(rel.debugDescription) → \(path)")
                XCTAssertLessThanOrEqual(name.utf8.count, 46)
            }
            XCTAssertFalse(p.dataPath.contains("passwd"))
            XCTAssertFalse(p.dataPath.contains("long-"))
        }
    }

    func testNamesAreDeterministicAndDistinct() {
        let a1 = PartialFile(destination: dest, relativePath: "a/b.txt")
        let a2 = PartialFile(destination: dest, relativePath: "a/b.txt")
        XCTAssertEqual(a1.dataPath, a2.dataPath)
        XCTAssertEqual(a1.statePath, a2.statePath)
        let rels = ["a/b.txt", "a/b.txT", "a/b.txt ", "a/b/txt", "b/a.txt", "ü", "u\u{308}"]
        let names = Set(rels.map { PartialFile(destination: dest, relativePath: $0).dataPath })
        XCTAssertEqual(names.count, rels.count, "distinct paths must not share a temporary file")
        // The destination is the only thing the directory depends on.
        let other = PartialFile(destination: "/elsewhere", relativePath: "a/b.txt")
        XCTAssertEqual((other.dataPath as NSString).lastPathComponent, (a1.dataPath as NSString).lastPathComponent)
        XCTAssertTrue(other.dataPath.hasPrefix("/elsewhere/.soak-partial/"))
    }

    // MARK: - State

    func testSaveLoadRoundTrip() throws {
        let p = PartialFile(destination: dest, relativePath: "dir/file.bin")
        writeData(p, size: 40)
        let s = state(key: "dir/ünïcødé \"file\".bin", done: [0, 1, 3])
        try p.saveState(s)
        XCTAssertEqual(p.loadState(), s)
        XCTAssertEqual(p.loadState()?.version, PartialState.formatVersion)
        // No temporary file left behind by the atomic replace.
        XCTAssertFalse(exists(p.statePath + ".tmp"))
        XCTAssertEqual(try listing(), [(p.dataPath as NSString).lastPathComponent,
                                       (p.statePath as NSString).lastPathComponent].sorted())
    }

    func testSaveReplacesThePreviousState() throws {
        let p = PartialFile(destination: dest, relativePath: "f")
        writeData(p, size: 40)
        try p.saveState(state(done: [0]))
        try p.saveState(state(done: [0, 1, 2, 3]))
        XCTAssertEqual(p.loadState()?.done, [0, 1, 2, 3])
    }

    func testNoStateLoadsAsNil() {
        let p = PartialFile(destination: dest, relativePath: "never-saved")
        writeData(p, size: 10)
        XCTAssertNil(p.loadState())
    }

    func testStateWithoutItsDataLoadsAsNil() throws {
        let p = PartialFile(destination: dest, relativePath: "dir/file.bin")
        try p.saveState(state())
        XCTAssertTrue(exists(p.statePath))
        XCTAssertFalse(exists(p.dataPath))
        XCTAssertNil(p.loadState())
        // With the data present the same state is trusted.
        writeData(p, size: 40)
        XCTAssertEqual(p.loadState(), state())
    }

    func testDataShorterThanTheStateClaimsLoadsAsNil() throws {
        // 4 parts of 10 bytes in a 35-byte object; the last part is 5 bytes long.
        let p = PartialFile(destination: dest, relativePath: "f")
        try p.saveState(state(size: 35, done: [0, 3]))
        writeData(p, size: 34)
        XCTAssertNil(p.loadState(), "part 3 ends at byte 35 but the data file has 34")
        writeData(p, size: 35)
        XCTAssertEqual(p.loadState()?.done, [0, 3])

        // Parts complete out of order: a data file reaching the end of the highest done part is enough.
        try p.saveState(state(size: 35, done: [1]))
        writeData(p, size: 20)
        XCTAssertNotNil(p.loadState())
        writeData(p, size: 19)
        XCTAssertNil(p.loadState())

        // Nothing done yet: an empty data file is fine.
        try p.saveState(state(size: 35, done: []))
        writeData(p, size: 0)
        XCTAssertNotNil(p.loadState())
    }

    func testCorruptOrForeignStateLoadsAsNil() throws {
        let p = PartialFile(destination: dest, relativePath: "f")
        writeData(p, size: 40)
        XCTAssertTrue(FileManager.default.createFile(atPath: p.statePath, contents: Data("{not json".utf8)))
        XCTAssertNil(p.loadState())
        XCTAssertTrue(FileManager.default.createFile(atPath: p.statePath, contents: Data()))
        XCTAssertNil(p.loadState())

        var future = state()
        future.version = PartialState.formatVersion + 1
        try p.saveState(future)
        XCTAssertNil(p.loadState(), "a state of another format version must be discarded")
    }

    func testSaveIntoAMissingDirectoryThrows() {
        let p = PartialFile(destination: dest + "/does-not-exist", relativePath: "f")
        XCTAssertThrowsError(try p.saveState(state())) { e in
            XCTAssertTrue(e is LocalIOError, "\(e)")
        }
        XCTAssertFalse(exists(p.statePath))
    }

    func testDiscardRemovesBoth() throws {
        let p = PartialFile(destination: dest, relativePath: "dir/file.bin")
        let other = PartialFile(destination: dest, relativePath: "other")
        writeData(p, size: 40)
        try p.saveState(state())
        XCTAssertTrue(FileManager.default.createFile(atPath: p.statePath + ".tmp", contents: Data("x".utf8)))
        writeData(other, size: 3)
        try other.saveState(state(key: "other", size: 3, partSize: 3, done: [0]))

        p.discard()
        XCTAssertFalse(exists(p.dataPath))
        XCTAssertFalse(exists(p.statePath))
        XCTAssertFalse(exists(p.statePath + ".tmp"))
        XCTAssertNil(p.loadState())
        // Another download's files are untouched.
        XCTAssertTrue(exists(other.dataPath))
        XCTAssertNotNil(other.loadState())
        XCTAssertEqual(try listing().count, 2)

        // Discarding what is not there is harmless.
        p.discard()
        XCTAssertEqual(try listing().count, 2)
    }
}
