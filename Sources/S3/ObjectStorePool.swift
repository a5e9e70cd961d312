import Foundation

/// Object stores for callers on many threads: `CurlObjectStore` is one libcurl easy handle and
/// serves one thread at a time, so each call borrows an idle store (or makes one) and gives it
/// back, keeping its connection warm for the next caller.
public final class ObjectStorePool: @unchecked Sendable {
    // @unchecked: `idle` is guarded by `lock`; stores are used by one borrower at a time.
    private let make: @Sendable () throws -> ObjectStore
    private let lock = NSLock()
    private var idle: [ObjectStore] = []
    /// Idle stores kept beyond this are dropped (their connections closed).
    public static let maxIdle = 8

    public init(make: @escaping @Sendable () throws -> ObjectStore) { self.make = make }

    /// Runs `body` with a store nobody else is using.
    public func with<T>(_ body: (ObjectStore) throws -> T) throws -> T {
        lock.lock()
        let s = idle.popLast()
        lock.unlock()
        let store = try s ?? make()
        defer {
            lock.lock()
            if idle.count < Self.maxIdle { idle.append(store) }
            lock.unlock()
        }
        return try body(store)
    }

    /// A store of its own for a long-running user (a prewarm), not returned to the pool.
    public func dedicated() throws -> ObjectStore { try make() }
}
