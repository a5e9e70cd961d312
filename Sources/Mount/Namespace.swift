import Cache
import Foundation
import Logging
import SoakCore

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
/// Root is 1 (FUSE_ROOT_ID). All state is guarded by one lock; listings run outside it.
public final class Namespace: @unchecked Sendable {
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
        var loading = false
        var isDirectory: Bool { object == nil }
        init(ino: UInt64, parent: UInt64, name: String, object: CachedObject?, mtime: Double, prefix: String) {
            self.ino = ino; self.parent = parent; self.name = name; self.object = object; self.mtime = mtime
            self.prefix = prefix
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
    private let cond = NSCondition()
    private var nodes: [Node] = []
    private var hiddenReasons: [String: String] = [:]
    private var bytes: Int64 = 0
    private var files = 0

    /// `remote` nil: the tree is whatever `populate` gave (tests); nothing is ever listed.
    public init(prefix: String, ttl: Double, filter: KeyFilter = KeyFilter([]), remote: MountRemote?,
                clock: @escaping @Sendable () -> Double = { MonotonicTime.now() }, logger: Logger) {
        self.prefix = prefix; self.ttl = ttl; self.filter = filter; self.remote = remote; self.clock = clock
        self.logger = logger
        nodes.append(Node(ino: 1, parent: 1, name: "", object: nil, mtime: Date().timeIntervalSince1970, prefix: prefix))
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
        cond.lock()
        var stack: [UInt64] = [Self.rootIno]
        while let ino = stack.popLast() {
            let dir = nodes[Int(ino - 1)]
            apply(listings[dir.prefix] ?? Listing(), to: dir, now: now)
            stack.append(contentsOf: dir.ordered.filter { nodes[Int($0 - 1)].isDirectory })
        }
        cond.unlock()
    }

    /// Reconciles a directory with a fresh listing of it (under the lock).
    private func apply(_ l: Listing, to dir: Node, now: Double) {
        var dirs = Set<String>()
        for p in l.prefixes {
            guard var name = KeyFilter.relativeKey(p, prefix: dir.prefix) else { continue }
            if name.hasSuffix("/") { name.removeLast() }
            guard Self.isShowable(name) else {
                hide(p, "its name '\(name.prefix(40))' cannot be shown on Linux (empty, '.', '..', NUL or over 255 bytes)")
                continue
            }
            dirs.insert(name)
        }
        var found: [String: CachedObject] = [:]
        for o in l.objects {
            guard let name = KeyFilter.relativeKey(o.key, prefix: dir.prefix), !name.isEmpty else { continue }  // its own marker
            guard Self.isShowable(name), !name.contains("/") else {
                hide(o.key, "its name '\(name.prefix(40))' cannot be shown on Linux (empty, '.', '..', NUL or over 255 bytes)")
                continue
            }
            guard filter.includes(KeyFilter.relativeKey(o.key, prefix: prefix) ?? name) else { continue }
            if dirs.contains(name) { hide(o.key, "it is also a directory prefix; the directory is shown"); continue }
            if found[name] != nil { hide(o.key, "a duplicate name"); continue }
            found[name] = o
        }
        for (name, ino) in dir.children {
            let n = nodes[Int(ino - 1)]
            if n.isDirectory ? dirs.contains(name) : found[name] != nil { continue }
            dir.children[name] = nil  // gone (or changed kind): the inode lives on for open files
            if let o = n.object { bytes -= o.size; files -= 1 }
        }
        for name in dirs where dir.children[name] == nil {
            add(parent: dir, name: name, object: nil, mtime: now, prefix: dir.prefix + name + "/")
        }
        for (name, o) in found {
            if let ino = dir.children[name], let old = nodes[Int(ino - 1)].object, Self.sameVersion(old, o) {
                let n = nodes[Int(ino - 1)]
                n.object = o
                n.checkedAt = now
            } else {
                if let ino = dir.children[name], let old = nodes[Int(ino - 1)].object {  // changed: a new inode
                    bytes -= old.size
                    files -= 1
                }
                add(parent: dir, name: name, object: o, mtime: o.mtime ?? now, prefix: "").checkedAt = now
                bytes += o.size
                files += 1
            }
        }
        dir.ordered = dir.children.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }.map(\.value)
        dir.subdirectories = dir.ordered.filter { nodes[Int($0 - 1)].isDirectory }.count
        dir.checkedAt = now
    }

    @discardableResult
    private func add(parent: Node, name: String, object: CachedObject?, mtime: Double, prefix: String) -> Node {
        let n = Node(ino: UInt64(nodes.count + 1), parent: parent.ino, name: name, object: object, mtime: mtime, prefix: prefix)
        nodes.append(n)
        parent.children[name] = n.ino
        return n
    }

    /// Logged once per key or prefix, however often it is listed again.
    private func hide(_ key: String, _ reason: String) {
        guard hiddenReasons.updateValue(reason, forKey: key) == nil else { return }
        logger.warning("not shown in the mount: \(PathError.printable(key)): \(reason)")
    }

    static func sameVersion(_ a: CachedObject, _ b: CachedObject) -> Bool {
        a.id == b.id && a.etag == b.etag && a.size == b.size
    }

    static func isShowable(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.count <= maxNameBytes && !name.utf8.contains(0)
    }

    /// Lists `dir` unless its listing is younger than `ttl`; concurrent callers wait for one
    /// listing. A failed refresh keeps the old contents (logged); a failed first listing throws.
    private func ensureListed(_ ino: UInt64) throws {
        cond.lock()
        guard let dir = node(locked: ino), dir.isDirectory else { cond.unlock(); return }
        while true {
            if let t = dir.checkedAt, clock() - t < ttl || remote == nil { cond.unlock(); return }
            if !dir.loading { break }
            cond.wait()
        }
        guard let remote else { cond.unlock(); return }
        dir.loading = true
        cond.unlock()
        let result = Result { try remote.listDirectory(dir.prefix) }
        cond.lock()
        defer { dir.loading = false; cond.broadcast(); cond.unlock() }
        switch result {
        case .success(let l):
            apply(l, to: dir, now: clock())
        case .failure(let e):
            guard dir.checkedAt != nil else { throw e }
            logger.warning("could not refresh the listing of \(dir.prefix.isEmpty ? "/" : dir.prefix) (keeping the old one): \(e)")
            dir.checkedAt = clock() - ttl + Self.retryAfterFailure
        }
    }

    // MARK: - Queries

    private func node(locked ino: UInt64) -> Node? {
        guard ino >= 1, ino <= UInt64(nodes.count) else { return nil }
        return nodes[Int(ino - 1)]
    }

    private func entry(locked n: Node) -> Entry {
        Entry(ino: n.ino, parent: n.parent, name: n.name, object: n.object, mtime: n.mtime,
              links: n.isDirectory ? (n.checkedAt == nil ? 1 : 2 + n.subdirectories) : 1)
    }

    public func entry(_ ino: UInt64) -> Entry? {
        cond.lock(); defer { cond.unlock() }
        return node(locked: ino).map(entry(locked:))
    }

    /// The child `name` of directory `parent` (listing it first if due); nil if there is none.
    public func lookup(parent: UInt64, name: String) throws -> Entry? {
        try ensureListed(parent)
        cond.lock(); defer { cond.unlock() }
        guard let p = node(locked: parent), let c = p.children[name] else { return nil }
        return node(locked: c).map(entry(locked:))
    }

    /// A directory, its parent and its children in name order (listing it first if due); nil
    /// if `ino` is not a directory.
    public func contents(_ ino: UInt64) throws -> (dir: Entry, parent: Entry, children: [Entry])? {
        try ensureListed(ino)
        cond.lock(); defer { cond.unlock() }
        guard let d = node(locked: ino), d.isDirectory, let p = node(locked: d.parent) else { return nil }
        return (entry(locked: d), entry(locked: p), d.ordered.compactMap { node(locked: $0).map(entry(locked:)) })
    }

    /// Up to `preceding` files before `ino` in its directory (name order, nearest first) and up
    /// to `count` files after it: for spotting readers that go through a directory in order,
    /// and reading ahead of them.
    public func neighbors(_ ino: UInt64, following count: Int, preceding: Int = 1) -> (previous: [UInt64], next: [Entry]) {
        cond.lock(); defer { cond.unlock() }
        guard let n = node(locked: ino), let p = node(locked: n.parent), p.children[n.name] == ino else { return ([], []) }
        // Binary search: `ordered` is in name (byte) order.
        var lo = 0, hi = p.ordered.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if nodes[Int(p.ordered[mid] - 1)].name.utf8.lexicographicallyPrecedes(n.name.utf8) { lo = mid + 1 } else { hi = mid }
        }
        guard lo < p.ordered.count, p.ordered[lo] == ino else { return ([], []) }
        var previous: [UInt64] = []
        var i = lo - 1
        while i >= 0 && previous.count < preceding {
            if !nodes[Int(p.ordered[i] - 1)].isDirectory { previous.append(p.ordered[i]) }
            i -= 1
        }
        var next: [Entry] = []
        i = lo + 1
        while i < p.ordered.count && next.count < count {
            let c = nodes[Int(p.ordered[i] - 1)]
            if !c.isDirectory { next.append(entry(locked: c)) }
            i += 1
        }
        return (previous, next)
    }

    // MARK: - Files

    /// Whether a file's object was last confirmed more than `ttl` ago (its opener should ask
    /// the remote for the current version).
    public func needsRevalidation(_ ino: UInt64) -> Bool {
        guard remote != nil else { return false }
        cond.lock(); defer { cond.unlock() }
        guard let n = node(locked: ino), !n.isDirectory else { return false }
        return clock() - (n.checkedAt ?? -.infinity) >= ttl
    }

    /// Forgets that a file was confirmed, so the next open revalidates it (after a 412).
    public func markStale(_ ino: UInt64) {
        cond.lock(); node(locked: ino)?.checkedAt = nil; cond.unlock()
    }

    /// Records a file's current object as the remote reported it. The same version: the entry
    /// is confirmed. A new version: the name gets a new inode (returned; the old one keeps the
    /// old version for files open on it). nil: the key is gone and so is the name.
    @discardableResult
    public func update(_ ino: UInt64, object: CachedObject?) -> Entry? {
        cond.lock(); defer { cond.unlock() }
        guard let n = node(locked: ino), let old = n.object, let parent = node(locked: n.parent) else { return nil }
        let shown = parent.children[n.name] == ino
        if let o = object, Self.sameVersion(old, o) {
            n.object = o
            n.checkedAt = clock()
            return entry(locked: n)
        }
        guard shown else {
            // A listing replaced or removed the name already: whatever it shows now.
            return parent.children[n.name].flatMap { node(locked: $0) }.map(entry(locked:))
        }
        parent.children[n.name] = nil
        bytes -= old.size
        files -= 1
        if let o = object {
            let fresh = add(parent: parent, name: n.name, object: o, mtime: o.mtime ?? n.mtime, prefix: "")
            fresh.checkedAt = clock()
            bytes += o.size
            files += 1
            parent.ordered = parent.ordered.map { $0 == ino ? fresh.ino : $0 }
            return entry(locked: fresh)
        }
        parent.ordered.removeAll { $0 == ino }
        return nil
    }

    // MARK: - Totals

    /// Keys and prefixes not shown, with why.
    public var hidden: [(key: String, reason: String)] {
        cond.lock(); defer { cond.unlock() }
        return hiddenReasons.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
    /// Bytes and files shown now.
    public var totals: (bytes: Int64, files: Int, inodes: Int) {
        cond.lock(); defer { cond.unlock() }
        return (bytes, files, nodes.count)
    }
}
