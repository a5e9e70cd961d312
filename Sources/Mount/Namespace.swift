import Cache
import Dispatch
import Foundation
import Logging
import SoakCore
import Synchronization

/// The directory tree the mount shows, built from listings recorded in the cache index.
///
/// Each directory is the S3 prefix `<mount prefix><path>/` and is filled from one delimiter
/// listing of that prefix: its files and its subdirectory prefixes. Small prefixes are listed
/// whole at mount time and every directory filled at once (`populate`); large ones are listed
/// lazily, a directory when it is first looked into. A directory's listing is refreshed when it
/// is used after `ttl` seconds (`MountRemote.listDirectory`); a file's object is revalidated by
/// its opener after `ttl` (`needsRevalidation`, `update`).
///
/// Rules, applied the same way to every listing so the tree is deterministic:
/// - directories are implicit from `/` in keys and from `key/` marker objects;
/// - a key that is both a file and a directory prefix (`a` and `a/b`) shows the directory; the
///   file is hidden (one log line);
/// - a name Linux cannot show (empty, `.`, `..`, longer than 255 bytes, containing NUL) hides
///   the key or prefix (one log line each);
/// - files the include/exclude filter rejects are not shown (directories always are).
///
/// Inode numbers are assigned once and never reused while mounted, and an inode's bytes never
/// change: a file whose object changes gets a new inode under the same name, so files opened
/// before keep reading the old version (the kernel's page cache is per inode) and never see
/// two versions mixed. A name that goes away keeps its inode for open files.
/// Root is 1 (FUSE_ROOT_ID). All state is guarded by one lock (`state`); listings run outside it.
public final class Namespace: Sendable {
    /// What one directory listing returned: its direct files (index rows) and its subdirectory
    /// prefixes (each `<directory prefix><name>/`).
    public struct Listing: Sendable {
        public var objects: [CachedObject]
        public var prefixes: [String]
        public init(objects: [CachedObject] = [], prefixes: [String] = []) {
            self.objects = objects; self.prefixes = prefixes
        }
    }

    /// A snapshot of one inode.
    public struct Entry: Sendable {
        public let ino: UInt64
        public let parent: UInt64
        public let name: String
        public let object: CachedObject?
        public let mtime: Double
        /// Directories: link count (2 + subdirectories once listed; 1, "unknown", before).
        public let links: Int
        public var isDirectory: Bool { object == nil }
    }

    /// One inode; reached only through `State`, under the lock.
    final class Node {
        let ino: UInt64
        let parent: UInt64
        let name: String
        var object: CachedObject?
        var mtime: Double
        /// Directories: the S3 prefix listed for their contents.
        let prefix: String
        var children: [String: UInt64] = [:]
        /// Child inodes in name order (readdir offsets index into this).
        var ordered: [UInt64] = []
        var subdirectories = 0
        /// Directories: when last listed (nil: not yet). Files: when the object was last
        /// confirmed by a listing or a revalidation.
        var checkedAt: Double?
        /// Directories: the listing under way, left when it is applied; others wait on it.
        var loading: DispatchGroup?
        var isDirectory: Bool { object == nil }
        init(ino: UInt64, parent: UInt64, name: String, object: CachedObject?, mtime: Double, prefix: String) {
            self.ino = ino; self.parent = parent; self.name = name; self.object = object; self.mtime = mtime
            self.prefix = prefix
        }

        var entry: Entry {
            Entry(ino: ino, parent: parent, name: name, object: object, mtime: mtime,
                  links: isDirectory ? (checkedAt == nil ? 1 : 2 + subdirectories) : 1)
        }
    }

    /// Everything the lock guards.
    struct State {
        /// Inode `i` is `nodes[i - 1]`.
        var nodes: [Node]
        var hiddenReasons: [String: String] = [:]
        var bytes: Int64 = 0
        var files = 0

        func node(_ ino: UInt64) -> Node? {
            guard ino >= 1, ino <= UInt64(nodes.count) else { return nil }
            return nodes[Int(ino - 1)]
        }
    }

    public static let rootIno: UInt64 = 1
    public static let maxNameBytes = 255
    /// After a failed refresh, a directory keeps its old contents this long before trying again.
    static let retryAfterFailure = 5.0
    public let prefix: String
    public let ttl: Double
    private let filter: KeyFilter
    private let remote: MountRemote?
    private let clock: @Sendable () -> Double
    private let logger: Logger
    private let state: Mutex<State>

    /// `remote` nil: the tree is whatever `populate` gave (tests); nothing is ever listed.
    public init(prefix: String, ttl: Double, filter: KeyFilter = KeyFilter([]), remote: MountRemote?,
                clock: @escaping @Sendable () -> Double = { MonotonicTime.now() }, logger: Logger) {
        self.prefix = prefix; self.ttl = ttl; self.filter = filter; self.remote = remote; self.clock = clock
        self.logger = logger
        let root = Node(ino: Self.rootIno, parent: Self.rootIno, name: "", object: nil, mtime: Date().timeIntervalSince1970,
                        prefix: prefix)
        state = Mutex(State(nodes: [root]))
    }

    /// A tree from one complete listing of the prefix, every directory filled (tests).
    public convenience init(objects: [CachedObject], prefix: String, logger: Logger) {
        self.init(prefix: prefix, ttl: .infinity, remote: nil, logger: logger)
        populate(objects: objects)
    }

    // MARK: - Filling

    /// Fills every directory from one complete (recursive) listing of the prefix, as if each had
    /// been listed with a delimiter now.
    public func populate(objects: [CachedObject]) {
        var listings: [String: Listing] = [:]
        var subdirs: [String: Set<String>] = [:]
        for o in objects {
            guard let rel = KeyFilter.relativeKey(o.key, prefix: prefix), !rel.isEmpty else { continue }
            let parts = rel.split(separator: "/", omittingEmptySubsequences: false)
            var dir = prefix
            for p in parts.dropLast() {
                let sub = dir + p + "/"
                subdirs[dir, default: []].insert(sub)
                dir = sub
            }
            if !parts.last!.isEmpty { listings[dir, default: Listing()].objects.append(o) }
        }
        for (dir, subs) in subdirs { listings[dir, default: Listing()].prefixes = subs.sorted() }
        let now = clock()
        state.withLock { s in
            var stack: [UInt64] = [Self.rootIno]
            while let ino = stack.popLast() {
                let dir = s.nodes[Int(ino - 1)]
                apply(listings[dir.prefix] ?? Listing(), to: dir, now: now, in: &s)
                stack.append(contentsOf: dir.ordered.filter { s.nodes[Int($0 - 1)].isDirectory })
            }
        }
    }

    /// Reconciles a directory with a fresh listing of it (under the lock).
    private func apply(_ l: Listing, to dir: Node, now: Double, in s: inout State) {
        var dirs = Set<String>()
        for p in l.prefixes {
            guard var name = KeyFilter.relativeKey(p, prefix: dir.prefix) else { continue }
            if name.hasSuffix("/") { name.removeLast() }
            guard Self.isShowable(name) else {
                hide(p, "its name '\(name.prefix(40))' cannot be shown on Linux (empty, '.', '..', NUL or over 255 bytes)", in: &s)
                continue
            }
            dirs.insert(name)
        }
        var found: [String: CachedObject] = [:]
        for o in l.objects {
            guard let name = KeyFilter.relativeKey(o.key, prefix: dir.prefix), !name.isEmpty else { continue }  // its own marker
            guard Self.isShowable(name), !name.contains("/") else {
                hide(o.key, "its name '\(name.prefix(40))' cannot be shown on Linux (empty, '.', '..', NUL or over 255 bytes)", in: &s)
                continue
            }
            guard filter.includes(KeyFilter.relativeKey(o.key, prefix: prefix) ?? name) else { continue }
            if dirs.contains(name) { hide(o.key, "it is also a directory prefix; the directory is shown", in: &s); continue }
            if found[name] != nil { hide(o.key, "a duplicate name", in: &s); continue }
            found[name] = o
        }
        for (name, ino) in dir.children {
            let n = s.nodes[Int(ino - 1)]
            if n.isDirectory ? dirs.contains(name) : found[name] != nil { continue }
            dir.children[name] = nil  // gone (or changed kind): the inode lives on for open files
            if let o = n.object { s.bytes -= o.size; s.files -= 1 }
        }
        for name in dirs where dir.children[name] == nil {
            add(parent: dir, name: name, object: nil, mtime: now, prefix: dir.prefix + name + "/", in: &s)
        }
        for (name, o) in found {
            if let ino = dir.children[name], let old = s.nodes[Int(ino - 1)].object, Self.sameVersion(old, o) {
                let n = s.nodes[Int(ino - 1)]
                n.object = o
                n.checkedAt = now
            } else {
                if let ino = dir.children[name], let old = s.nodes[Int(ino - 1)].object {  // changed: a new inode
                    s.bytes -= old.size
                    s.files -= 1
                }
                add(parent: dir, name: name, object: o, mtime: o.mtime ?? now, prefix: "", in: &s).checkedAt = now
                s.bytes += o.size
                s.files += 1
            }
        }
        dir.ordered = dir.children.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }.map(\.value)
        dir.subdirectories = dir.ordered.filter { s.nodes[Int($0 - 1)].isDirectory }.count
        dir.checkedAt = now
    }

    @discardableResult
    private func add(parent: Node, name: String, object: CachedObject?, mtime: Double, prefix: String,
                     in s: inout State) -> Node {
        let n = Node(ino: UInt64(s.nodes.count + 1), parent: parent.ino, name: name, object: object, mtime: mtime, prefix: prefix)
        s.nodes.append(n)
        parent.children[name] = n.ino
        return n
    }

    /// Logged once per key or prefix, however often it is listed again.
    private func hide(_ key: String, _ reason: String, in s: inout State) {
        guard s.hiddenReasons.updateValue(reason, forKey: key) == nil else { return }
        logger.warning("not shown in the mount: \(PathError.printable(key)): \(reason)")
    }

    static func sameVersion(_ a: CachedObject, _ b: CachedObject) -> Bool {
        a.id == b.id && a.etag == b.etag && a.size == b.size
    }

    static func isShowable(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.count <= maxNameBytes && !name.utf8.contains(0)
    }

    /// What a caller of `ensureListed` does next, decided under the lock.
    private enum ListingStep {
        case done
        /// Another caller is listing the directory: wait for it, then look again.
        case wait(DispatchGroup)
        /// This caller lists `prefix` and leaves `group` once the result is applied.
        case list(prefix: String, group: DispatchGroup)
    }

    /// Lists `dir` unless its listing is younger than `ttl`; concurrent callers wait for one
    /// listing. A failed refresh keeps the old contents (logged); a failed first listing throws.
    private func ensureListed(_ ino: UInt64) throws {
        guard let remote else { return }  // the tree is what `populate` gave
        while true {
            let step: ListingStep = state.withLock { s in
                guard let dir = s.node(ino), dir.isDirectory else { return .done }
                if let t = dir.checkedAt, clock() - t < ttl { return .done }
                if let g = dir.loading { return .wait(g) }
                let g = DispatchGroup()
                g.enter()
                dir.loading = g
                return .list(prefix: dir.prefix, group: g)
            }
            switch step {
            case .done:
                return
            case .wait(let g):
                g.wait()
            case .list(let prefix, let g):
                defer { g.leave() }  // after the result is in the tree (or the error thrown)
                let result = Result { try remote.listDirectory(prefix) }
                try state.withLock { s in
                    let dir = s.nodes[Int(ino - 1)]
                    dir.loading = nil
                    switch result {
                    case .success(let l):
                        apply(l, to: dir, now: clock(), in: &s)
                    case .failure(let e):
                        guard dir.checkedAt != nil else { throw e }
                        logger.warning("could not refresh the listing of \(prefix.isEmpty ? "/" : prefix) (keeping the old one): \(e)")
                        dir.checkedAt = clock() - ttl + Self.retryAfterFailure
                    }
                }
                return
            }
        }
    }

    // MARK: - Queries

    public func entry(_ ino: UInt64) -> Entry? {
        state.withLock { $0.node(ino)?.entry }
    }

    /// The child `name` of directory `parent` (listing it first if due); nil if there is none.
    public func lookup(parent: UInt64, name: String) throws -> Entry? {
        try ensureListed(parent)
        return state.withLock { s in
            guard let p = s.node(parent), let c = p.children[name] else { return nil }
            return s.node(c)?.entry
        }
    }

    /// A directory, its parent and its children in name order (listing it first if due); nil
    /// if `ino` is not a directory.
    public func contents(_ ino: UInt64) throws -> (dir: Entry, parent: Entry, children: [Entry])? {
        try ensureListed(ino)
        return state.withLock { s in
            guard let d = s.node(ino), d.isDirectory, let p = s.node(d.parent) else { return nil }
            return (d.entry, p.entry, d.ordered.compactMap { s.node($0)?.entry })
        }
    }

    /// Up to `preceding` files before `ino` in its directory (name order, nearest first) and up
    /// to `count` files after it: for spotting readers that go through a directory in order,
    /// and reading ahead of them.
    public func neighbors(_ ino: UInt64, following count: Int, preceding: Int = 1) -> (previous: [UInt64], next: [Entry]) {
        state.withLock { s in
            guard let n = s.node(ino), let p = s.node(n.parent), p.children[n.name] == ino else { return ([], []) }
            // Binary search: `ordered` is in name (byte) order.
            var lo = 0, hi = p.ordered.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if s.nodes[Int(p.ordered[mid] - 1)].name.utf8.lexicographicallyPrecedes(n.name.utf8) { lo = mid + 1 } else { hi = mid }
            }
            guard lo < p.ordered.count, p.ordered[lo] == ino else { return ([], []) }
            var previous: [UInt64] = []
            var i = lo - 1
            while i >= 0 && previous.count < preceding {
                if !s.nodes[Int(p.ordered[i] - 1)].isDirectory { previous.append(p.ordered[i]) }
                i -= 1
            }
            var next: [Entry] = []
            i = lo + 1
            while i < p.ordered.count && next.count < count {
                let c = s.nodes[Int(p.ordered[i] - 1)]
                if !c.isDirectory { next.append(c.entry) }
                i += 1
            }
            return (previous, next)
        }
    }

    // MARK: - Files

    /// Whether a file's object was last confirmed more than `ttl` ago (its opener should ask
    /// the remote for the current version).
    public func needsRevalidation(_ ino: UInt64) -> Bool {
        guard remote != nil else { return false }
        return state.withLock { s in
            guard let n = s.node(ino), !n.isDirectory else { return false }
            return clock() - (n.checkedAt ?? -.infinity) >= ttl
        }
    }

    /// Forgets that a file was confirmed, so the next open revalidates it (after a 412).
    public func markStale(_ ino: UInt64) {
        state.withLock { $0.node(ino)?.checkedAt = nil }
    }

    /// Records a file's current object as the remote reported it. The same version: the entry
    /// is confirmed. A new version: the name gets a new inode (returned; the old one keeps the
    /// old version for files open on it). nil: the key is gone and so is the name.
    @discardableResult
    public func update(_ ino: UInt64, object: CachedObject?) -> Entry? {
        state.withLock { s in
            guard let n = s.node(ino), let old = n.object, let parent = s.node(n.parent) else { return nil }
            let shown = parent.children[n.name] == ino
            if let o = object, Self.sameVersion(old, o) {
                n.object = o
                n.checkedAt = clock()
                return n.entry
            }
            guard shown else {
                // A listing replaced or removed the name already: whatever it shows now.
                return parent.children[n.name].flatMap { s.node($0) }?.entry
            }
            parent.children[n.name] = nil
            s.bytes -= old.size
            s.files -= 1
            if let o = object {
                let fresh = add(parent: parent, name: n.name, object: o, mtime: o.mtime ?? n.mtime, prefix: "", in: &s)
                fresh.checkedAt = clock()
                s.bytes += o.size
                s.files += 1
                parent.ordered = parent.ordered.map { $0 == ino ? fresh.ino : $0 }
                return fresh.entry
            }
            parent.ordered.removeAll { $0 == ino }
            return nil
        }
    }

    // MARK: - Totals

    /// Keys and prefixes not shown, with why.
    public var hidden: [(key: String, reason: String)] {
        state.withLock { s in s.hiddenReasons.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }
    /// Bytes and files shown now.
    public var totals: (bytes: Int64, files: Int, inodes: Int) {
        state.withLock { s in (s.bytes, s.files, s.nodes.count) }
    }
}
