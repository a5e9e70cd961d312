import Cache
import Foundation
import FuzzSupport
import S3
import SoakCore
import XCTest
@testable import Mount

/// The namespace part of the reference-model test: seeded random sequences of bucket changes
/// (put, overwrite, delete) and mount requests (lookup, getattr, readdir, open, read, release)
/// with an injected clock, each answer checked against what the TTL rules allow:
/// - a name or a directory's contents may be stale for at most the TTL: it shows the bucket's
///   state at some moment of the last TTL (a directory: one moment for all its entries);
/// - an inode always shows one version (its size and bytes never change);
/// - an open file reads its version's bytes, or ESTALE once that version is gone from the
///   bucket (ENOENT once the key is); never another version's bytes.
/// `SOAK_FUZZ_ITERATIONS` sets the steps per sequence (long runs), `SOAK_FUZZ_SEED` the seed;
/// a failure names both.
final class ReferenceModelTests: XCTestCase {
    static let ttl = 10.0
    static let keys = ["p/a", "p/b", "p/c", "p/d/e", "p/d/f"]
    /// Sequences per run; each has its own generator from the seed.
    static let sequences = 4

    func testMountAnswersWhatTheModelAllows() throws {
        let steps = Fuzz.iterations(150)
        for i in 0..<Self.sequences {
            var sequence = try Sequence(rng: Fuzz.rng("mount-model", i), lazy: i % 2 == 1,
                                        context: Fuzz.context("mount-model", i))
            try sequence.run(steps: steps)
        }
    }

    /// One sequence: the bucket's history (the model), the mount under test, and the checks.
    struct Sequence {
        var rng: SeededRandom
        let f: MountFixture
        let context: String
        /// Per key, its versions in order: when each began and its id (nil: deleted).
        var history: [String: [(time: Double, version: Int?)]] = [:]
        var nextVersion = 1
        var versionOfETag: [String: Int] = [:]
        /// What each inode showed first (its version); it must never change.
        var inodeVersion: [UInt64: Int] = [:]
        var inodeKey: [UInt64: String] = [:]
        var open: [(fh: UInt64, ino: UInt64, key: String, version: Int)] = []
        var log: [String] = []
        /// Answers seen, by kind (printed, to show what a run exercised).
        var tally: [String: Int] = [:]

        init(rng: SeededRandom, lazy: Bool, context: String) throws {
            self.rng = rng
            self.context = context
            f = try MountFixture(objects: [:], ttl: ReferenceModelTests.ttl, lazy: true)
            for k in ReferenceModelTests.keys where self.rng.chance(0.7) { put(k) }
            if !lazy {
                let infos = try f.store.listPage(bucket: MountFixture.bucket, prefix: "p/", delimiter: nil,
                                                 continuationToken: nil, maxKeys: 1000).objects
                f.namespace.populate(objects: try f.cache.index.recordListing(bucketID: f.bucketID, objects: infos, stamp: 1).objects)
            }
        }

        static func bytes(_ version: Int) -> [UInt8] {
            // The version id first, so every version's bytes (and ETag) differ.
            withUnsafeBytes(of: UInt64(version).littleEndian, Array.init) + content(version % 7 * 900 + 100, seed: version)
        }

        mutating func put(_ key: String) {
            let v = nextVersion; nextVersion += 1
            versionOfETag[f.store.put(bucket: MountFixture.bucket, key: key, Self.bytes(v))] = v
            history[key, default: []].append((f.now, v))
        }

        mutating func run(steps: Int) throws {
            defer { f.shutdown() }
            for step in 0..<steps {
                if rng.chance(0.25) {
                    // A change strictly after every request so far: a listing never sees half of it.
                    // Fetches of earlier reads may still be on their way to the committer.
                    f.advance(Double(rng.int(1...4000)) / 1000)
                    let key = rng.pick(ReferenceModelTests.keys)
                    if rng.chance(0.3) {
                        f.store.delete(bucket: MountFixture.bucket, key: key)
                        history[key, default: []].append((f.now, nil))
                        log.append("\(step): delete \(key)")
                    } else {
                        put(key)
                        log.append("\(step): put \(key) v\(nextVersion - 1)")
                    }
                    continue
                }
                if rng.chance(0.5) { f.advance(Double(rng.int(0...3000)) / 1000) }
                switch rng.int(0...6) {
                case 0, 1: try lookup(rng.pick(ReferenceModelTests.keys))
                case 2: try readdir(rng.chance(0.5) ? "" : "d")
                case 3: try openFile(rng.pick(ReferenceModelTests.keys))
                case 4: try readOpen()
                case 5:
                    // An inode seen before (a kernel's cached name, a program's saved handle).
                    // (Sorted: a dictionary's order changes from run to run, the seed must not.)
                    if !inodeKey.isEmpty {
                        let ino = rng.pick(inodeKey.keys.sorted())
                        try openFile(inodeKey[ino]!, ino: ino)
                    }
                default: release()
                }
                if !log.isEmpty, log.count > 30 { log.removeFirst(log.count - 30) }
            }
            while !open.isEmpty { release() }
            print("mount model \(context): \(steps) steps, " + tally.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }

        // MARK: - The model

        /// The version of `key` at time `t` (after every change at or before `t`).
        func version(_ key: String, at t: Double) -> Int? {
            history[key]?.last { $0.time <= t }?.version ?? nil
        }

        /// The moments whose state an answer at `now` may show: the start of the TTL window and
        /// every change within it.
        func moments(_ now: Double) -> [Double] {
            let start = now - ReferenceModelTests.ttl
            return [start] + history.values.flatMap { $0.map(\.time) }.filter { $0 > start && $0 <= now }
        }

        func allowed(_ key: String, now: Double) -> Set<Int?> { Set(moments(now).map { version(key, at: $0) }) }

        /// The names a directory shows at moment `t`.
        func names(_ dir: String, at t: Double) -> Set<String> {
            var out = Set<String>()
            for k in ReferenceModelTests.keys where version(k, at: t) != nil {
                let rel = k.dropFirst(2 + (dir.isEmpty ? 0 : dir.count + 1))
                guard dir.isEmpty || k.hasPrefix("p/\(dir)/") else { continue }
                out.insert(String(rel.split(separator: "/").first!))
            }
            return out
        }

        /// A violation, with the seed and the steps that led to it.
        struct Violation: Error, CustomStringConvertible { let description: String }

        func fail(_ message: String) -> Error {
            Violation(description: "\(message) at clock \(f.now) \(context)\nlast steps:\n" + log.joined(separator: "\n"))
        }

        /// The version an inode shows, checked against what it showed before.
        mutating func inodeShows(_ ino: UInt64, key: String) throws -> Int {
            guard let etag = f.namespace.entry(ino)?.object?.etag, let v = versionOfETag[etag] else {
                throw fail("inode \(ino) of \(key) shows no known version")
            }
            inodeKey[ino] = key
            if let before = inodeVersion.updateValue(v, forKey: ino), before != v {
                throw fail("inode \(ino) of \(key) showed v\(before), now v\(v)")
            }
            return v
        }

        // MARK: - Requests

        /// Looks `key` up name by name; nil if some name is not there.
        mutating func resolve(_ key: String) throws -> UInt64? {
            var ino = Namespace.rootIno
            for name in key.dropFirst(2).split(separator: "/") {
                switch f.fs.lookup(parent: ino, name: String(name)) {
                case .success(.entry(let a, _)): ino = a.ino
                case .success(.noEntry): return nil
                case let other: throw fail("lookup \(name): \(other)")
                }
            }
            return ino
        }

        mutating func lookup(_ key: String) throws {
            let ino = try resolve(key)
            let shown = try ino.map { try inodeShows($0, key: key) }
            log.append("lookup \(key): \(shown.map { "v\($0)" } ?? "none")")
            tally[shown == nil ? "lookup none" : "lookup found", default: 0] += 1
            guard allowed(key, now: f.now).contains(shown) else {
                throw fail("lookup \(key) showed \(String(describing: shown)); allowed \(allowed(key, now: f.now))")
            }
            if let ino, case .success(.attr(let a, _)) = f.fs.getattr(ino: ino), let v = shown,
               a.size != Int64(Self.bytes(v).count) {
                throw fail("getattr of \(key) (v\(v)) has size \(a.size)")
            }
        }

        mutating func readdir(_ dir: String) throws {
            let ino: UInt64
            if dir.isEmpty { ino = Namespace.rootIno } else {
                guard case .success(.entry(let a, _)) = f.fs.lookup(parent: Namespace.rootIno, name: dir) else {
                    log.append("readdir \(dir): no such directory")
                    guard moments(f.now).contains(where: { !names("", at: $0).contains(dir) }) else {
                        throw fail("no directory \(dir), though it was there for the whole TTL")
                    }
                    return
                }
                ino = a.ino
            }
            guard case .success(.open(let fh, _)) = f.fs.opendir(ino: ino) else { throw fail("opendir \(dir)") }
            defer { _ = f.fs.releasedir(ino: ino, fh: fh) }
            guard case .success(.directory(let entries, _)) = f.fs.readdir(ino: ino, fh: fh, offset: 0) else {
                throw fail("readdir \(dir)")
            }
            let shown = Set(entries.map(\.name)).subtracting([".", ".."])
            log.append("readdir \(dir.isEmpty ? "/" : dir): \(shown.sorted())")
            tally["readdir", default: 0] += 1
            guard moments(f.now).contains(where: { names(dir, at: $0) == shown }) else {
                throw fail("readdir \(dir) showed \(shown.sorted()), no state of the last TTL had that")
            }
            for e in entries where !e.attr.isDirectory {
                _ = try inodeShows(e.attr.ino, key: (dir.isEmpty ? "p/" : "p/\(dir)/") + e.name)
            }
        }

        /// Opens `key` (looked up now, or the inode given) and checks the answer.
        mutating func openFile(_ key: String, ino known: UInt64? = nil) throws {
            guard let ino = try known ?? resolve(key) else { return }
            let v = try inodeShows(ino, key: key)
            let now = f.now
            switch f.open(ino) {
            case .success(.open(let fh, _)):
                log.append("open \(key) v\(v): fh \(fh)")
                tally["open", default: 0] += 1
                guard allowed(key, now: now).contains(v) else { throw fail("opened \(key) v\(v), older than the TTL") }
                open.append((fh, ino, key, v))
                if open.count > 4 { release() }
            case .failure(let e) where e.kind == .stale:
                log.append("open \(key) v\(v): ESTALE")
                tally["open ESTALE", default: 0] += 1
                guard version(key, at: now) != v else { throw fail("ESTALE on \(key) v\(v), the current version") }
            case .failure(let e) where e.kind == .notFound:
                log.append("open \(key) v\(v): ENOENT")
                tally["open ENOENT", default: 0] += 1
                guard version(key, at: now) == nil else { throw fail("ENOENT on \(key), which exists") }
            case let other:
                throw fail("open \(key): \(other)")
            }
        }

        mutating func readOpen() throws {
            guard !open.isEmpty else { return }
            let h = open[rng.int(0...(open.count - 1))]
            let data = Self.bytes(h.version)
            let offset = rng.int(0...(data.count - 1))
            let size = rng.int(1...2 * data.count)
            let result = f.read(h.fh, offset: Int64(offset), size: size)
            let current = version(h.key, at: f.now)
            switch result {
            case .success(let got):
                log.append("read \(h.key) v\(h.version) at \(offset): \(got.count) bytes")
                tally["read bytes", default: 0] += 1
                guard got == Array(data[offset..<min(data.count, offset + size)]) else {
                    throw fail("read \(h.key) v\(h.version) at \(offset) returned other bytes")
                }
            case .failure(let e) where e.kind == .stale && current != h.version:
                log.append("read \(h.key) v\(h.version): ESTALE")
                tally["read ESTALE", default: 0] += 1
            case .failure(let e) where e.kind == .notFound && current == nil:
                log.append("read \(h.key) v\(h.version): ENOENT")
                tally["read ENOENT", default: 0] += 1
            case .failure(let e):
                throw fail("read \(h.key) v\(h.version) (now \(String(describing: current))): \(e.kind) \(e)")
            }
        }

        mutating func release() {
            guard !open.isEmpty else { return }
            let h = open.remove(at: rng.int(0...(open.count - 1)))
            _ = f.fs.release(ino: h.ino, fh: h.fh)
            log.append("release \(h.key) fh \(h.fh)")
        }
    }
}
