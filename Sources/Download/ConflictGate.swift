/// Streams a listing while keeping the file/directory conflict rule: a key that is also a
/// directory prefix (`a` and `a/b`) yields to the directory.
///
/// Sorted listings (every general purpose S3 bucket) stream with bounded memory: keys arrive in
/// byte order, and every key under `K/` sorts in `[K/, K0)` (`0` follows `/`). So a key `K` is
/// held only until a later key settles it: one starting with `K/` makes `K` a conflict; one
/// sorting at or past `K0` proves no such key will come, and `K` is released. Few keys are ever
/// held (those followed by names like `K.bak` or `K-1`).
///
/// Unsorted listings (directory buckets, S3 Express One Zone) cannot be settled before the end:
/// with `sorted: false` every key is held and checked against the set of all directories seen
/// when the listing ends. A listing promised sorted that goes backwards switches to that mode
/// for the rest (`switchedToUnsorted`). Keys released before the switch were settled on the
/// promise and are not remembered (that would cost memory for every sorted listing): a late key
/// under one of them meets a file where its directory should be and fails on its own.
public struct ConflictGate<Item> {
    private var held: [(dir: String, item: Item?)] = []
    /// Sorted mode: the last path offered, to notice a listing that is not sorted after all.
    private var last: String? = nil
    /// Unsorted mode: every held file by path, and every directory (`a/`, `a/b/`) seen.
    private var unsorted: (files: [(path: String, item: Item)], dirs: Set<String>)? = nil

    public init(sorted: Bool = true) {
        if !sorted { unsorted = ([], []) }
    }

    /// True once a listing that was meant to be sorted went backwards.
    public private(set) var switchedToUnsorted = false

    /// Directory buckets (S3 Express One Zone, named `…--x-s3`) list keys unsorted.
    public static func listsSorted(bucket: String) -> Bool { !bucket.hasSuffix("--x-s3") }

    /// Offers the next listed path (`item` nil for a directory marker, which only settles
    /// others). Returns the held items this settles.
    public mutating func offer(path: String, item: Item?) -> (ready: [Item], conflicts: [Item]) {
        if unsorted == nil, let l = last, path.utf8.lexicographicallyPrecedes(l.utf8) { switchToUnsorted() }
        if unsorted != nil { return offerUnsorted(path: path, item: item) }
        last = path
        var ready: [Item] = [], conflicts: [Item] = []
        held.removeAll { h in
            if path.hasPrefix(h.dir) {
                if let i = h.item { conflicts.append(i) }
                return true
            }
            if h.dir.utf8.lexicographicallyPrecedes(path.utf8) {
                if let i = h.item { ready.append(i) }
                return true
            }
            return false
        }
        if !path.hasSuffix("/") { held.append((path + "/", item)) }
        return (ready, conflicts)
    }

    /// The end of the listing: everything still held that no directory covers is a plain file.
    public mutating func finish() -> (ready: [Item], conflicts: [Item]) {
        defer { held.removeAll(); if unsorted != nil { unsorted = ([], []) } }
        guard let u = unsorted else { return (held.compactMap(\.item), []) }
        var ready: [Item] = [], conflicts: [Item] = []
        for f in u.files {
            if u.dirs.contains(f.path + "/") { conflicts.append(f.item) } else { ready.append(f.item) }
        }
        return (ready, conflicts)
    }

    private mutating func switchToUnsorted() {
        switchedToUnsorted = true
        var state: (files: [(path: String, item: Item)], dirs: Set<String>) = ([], [])
        for h in held { if let i = h.item { state.files.append((String(h.dir.dropLast()), i)) } }
        held.removeAll()
        unsorted = state
    }

    private mutating func offerUnsorted(path: String, item: Item?) -> (ready: [Item], conflicts: [Item]) {
        // Every ancestor directory of the path ("a/", "a/b/"), and a marker's own directory.
        var dirs: [String] = []
        var i = path.utf8.startIndex
        while let slash = path.utf8[i...].firstIndex(of: UInt8(ascii: "/")) {
            let next = path.utf8.index(after: slash)
            dirs.append(String(path[..<next]))
            i = next
        }
        unsorted!.dirs.formUnion(dirs)
        if let item, !path.hasSuffix("/") { unsorted!.files.append((path, item)) }
        return ([], [])
    }
}
