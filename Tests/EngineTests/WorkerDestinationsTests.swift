import Foundation
import XCTest
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// A process keeps a bounded number of destinations open, however many it has written to.
final class WorkerDestinationsTests: XCTestCase {
    private var dirs: [String] = []

    override func tearDown() { for d in dirs { try? FileManager.default.removeItem(atPath: d) } }

    /// Descriptors this process holds open on `path`.
    private func openDescriptors(on paths: Set<String>) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd)).map(paths.contains) ?? false
        }.count
    }

    /// Opening more destinations than the bound closes the least recently used; one still in
    /// use stays open and usable until it is let go, and one used again is kept.
    func testOpenDestinationsAreBoundedLeastRecentlyUsedFirst() throws {
        let n = WorkerDestinations.maxOpenRoots * 3
        for i in 0..<n {
            let d = NSTemporaryDirectory() + "soak-dests-\(UUID().uuidString.prefix(8))-\(i)"
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            dirs.append(URL(fileURLWithPath: d).resolvingSymlinksInPath().path)
        }
        let all = Set(dirs)
        var held: DestinationRoot? = try WorkerDestinations.root(dirs[0])  // an order still writing there
        let often = try WorkerDestinations.root(dirs[1])  // used all along: never the least recent
        for (i, d) in dirs.enumerated().dropFirst(2) {
            let r = try WorkerDestinations.root(d)
            XCTAssertEqual(r.path, d)
            if i % 2 == 0 { XCTAssertTrue(try WorkerDestinations.root(dirs[1]) === often, "kept while in use") }
        }
        XCTAssertLessThanOrEqual(WorkerDestinations.openRoots, WorkerDestinations.maxOpenRoots)
        XCTAssertLessThanOrEqual(openDescriptors(on: all), WorkerDestinations.maxOpenRoots + 1, "evicted ones are closed")
        let fd = try held!.open("still-here", O_WRONLY | O_CREAT)
        close(fd)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dirs[0] + "/still-here"), "a held destination stays usable")
        held = nil
        XCTAssertLessThanOrEqual(openDescriptors(on: all), WorkerDestinations.maxOpenRoots, "and is closed when let go")
        let reopened = try WorkerDestinations.root(dirs[0])
        XCTAssertEqual(reopened.path, dirs[0], "an evicted destination opens again on its next use")
    }
}
