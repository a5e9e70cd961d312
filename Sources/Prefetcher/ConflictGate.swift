/// Streams a sorted listing while keeping the file/directory conflict rule: a key that is also
/// a directory prefix (`a` and `a/b`) yields to the directory.
///
/// Keys arrive in byte order, and every key under `K/` sorts in `[K/, K0)` (`0` follows `/`).
/// So a key `K` is held only until a later key settles it: one starting with `K/` makes `K` a
/// conflict; one sorting at or past `K0` proves no such key will come, and `K` is released.
/// Few keys are ever held (those followed by names like `K.bak` or `K-1`).
public struct ConflictGate<Item> {
    private var held: [(dir: String, item: Item?)] = []

    public init() {}

    /// Offers the next listed path (`item` nil for a directory marker, which only settles
    /// others). Returns the held items this settles.
    public mutating func offer(path: String, item: Item?) -> (ready: [Item], conflicts: [Item]) {
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

    /// The end of the listing: everything still held is a plain file.
    public mutating func finish() -> [Item] {
        defer { held.removeAll() }
        return held.compactMap(\.item)
    }
}
