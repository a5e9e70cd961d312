import Cache
import Logging

/// The directory tree the mount shows, built from the listing stored in the cache index.
///
/// Directories are implicit from `/` in keys and from `key/` marker objects. Rules, applied in
/// key order so the result is deterministic:
/// - a key that is both a file and a directory prefix (`a` and `a/b`) shows the directory; the
///   file is hidden (one log line);
/// - a name Linux cannot show (empty, `.`, `..`, longer than 255 bytes, containing NUL) hides
///   the key (one log line each).
/// Inode numbers are assigned once and never reused while mounted; root is 1 (FUSE_ROOT_ID).
public final class Namespace: @unchecked Sendable {
    // @unchecked: immutable after init.
    public final class Node: @unchecked Sendable {
        public let ino: UInt64
        public let parent: UInt64
        public let name: String
        public fileprivate(set) var object: CachedObject?
        public fileprivate(set) var children: [String: UInt64] = [:]
        /// Child inodes in name order (readdir offsets index into this).
        public fileprivate(set) var ordered: [UInt64] = []
        public fileprivate(set) var mtime: Double
        /// Child directories: a directory's link count is 2 + this (find and fts rely on it).
        public fileprivate(set) var subdirectories = 0
        public var isDirectory: Bool { object == nil }
        init(ino: UInt64, parent: UInt64, name: String, object: CachedObject?, mtime: Double) {
            self.ino = ino; self.parent = parent; self.name = name; self.object = object; self.mtime = mtime
        }
    }

    public static let rootIno: UInt64 = 1
    public static let maxNameBytes = 255
    private var nodes: [Node] = []
    public private(set) var hidden: [(key: String, reason: String)] = []
    public private(set) var totalBytes: Int64 = 0

    public init(objects: [CachedObject], prefix: String, now: Double, logger: Logger) {
        nodes.append(Node(ino: 1, parent: 1, name: "", object: nil, mtime: now))
        for o in objects {
            guard o.key.hasPrefix(prefix) else { continue }
            let rel = String(o.key.dropFirst(prefix.count))
            if rel.isEmpty { continue }  // the prefix's own marker
            let isMarker = rel.hasSuffix("/")
            var parts = rel.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            if isMarker { parts.removeLast() }
            if let bad = parts.first(where: { !Self.isShowable($0) }) {
                hide(o.key, "its name '\(bad.prefix(40))' cannot be shown on Linux (empty, '.', '..', NUL or over 255 bytes)", logger)
                continue
            }
            var dir = Self.rootIno
            for (i, name) in parts.enumerated() {
                guard i == parts.count - 1 && !isMarker else {
                    dir = directory(named: name, in: dir, now: now, logger: logger)
                    continue
                }
                if let existing = nodes[Int(dir - 1)].children[name] {
                    hide(o.key, nodes[Int(existing - 1)].isDirectory ? "it is also a directory prefix; the directory is shown"
                                                                     : "a duplicate name", logger)
                    break
                }
                add(parent: dir, name: name, object: o, mtime: o.mtime ?? now)
                totalBytes += o.size
            }
        }
        for n in nodes where n.isDirectory {
            n.ordered = n.children.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }.map(\.value)
            n.subdirectories = n.ordered.filter { nodes[Int($0 - 1)].isDirectory }.count
        }
    }

    /// The child directory `name` of `dir`, created if needed. A file already there yields: the
    /// directory wins and the file is hidden.
    private func directory(named name: String, in dir: UInt64, now: Double, logger: Logger) -> UInt64 {
        if let existing = nodes[Int(dir - 1)].children[name] {
            let n = nodes[Int(existing - 1)]
            if n.isDirectory { return existing }
            hide(n.object!.key, "it is also a directory prefix; the directory is shown", logger)
            totalBytes -= n.object!.size
            n.object = nil  // the inode becomes the directory
            return existing
        }
        return add(parent: dir, name: name, object: nil, mtime: now).ino
    }

    @discardableResult
    private func add(parent: UInt64, name: String, object: CachedObject?, mtime: Double) -> Node {
        let n = Node(ino: UInt64(nodes.count + 1), parent: parent, name: name, object: object, mtime: mtime)
        nodes.append(n)
        nodes[Int(parent - 1)].children[name] = n.ino
        return n
    }

    private func hide(_ key: String, _ reason: String, _ logger: Logger) {
        hidden.append((key, reason))
        logger.warning("not shown in the mount: \(key): \(reason)")
    }

    static func isShowable(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.count <= maxNameBytes && !name.utf8.contains(0)
    }

    public func node(_ ino: UInt64) -> Node? {
        guard ino >= 1, ino <= UInt64(nodes.count) else { return nil }
        return nodes[Int(ino - 1)]
    }

    public func lookup(parent: UInt64, name: String) -> Node? {
        guard let p = node(parent), let c = p.children[name] else { return nil }
        return node(c)
    }

    public var count: Int { nodes.count }
}
