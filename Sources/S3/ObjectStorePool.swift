import Foundation
import Synchronization

/// Object stores for callers on many threads: `CurlObjectStore` is one libcurl easy handle and
/// serves one thread at a time, so each call borrows an idle store (or makes one) and gives it
/// back, keeping its connection warm for the next caller.
public final class ObjectStorePool: Sendable {
    private let make: @Sendable () throws -> ObjectStore
    /// Stores nobody is using; each is used by one borrower at a time.
    private let idle = Mutex<[ObjectStore]>([])
    /// Idle stores kept beyond this are dropped (their connections closed).
    public static let maxIdle = 8

    public init(make: @escaping @Sendable () throws -> ObjectStore) { self.make = make }

    /// Runs `body` with a store nobody else is using.
    public func with<T>(_ body: (ObjectStore) throws -> T) throws -> T {
        let store = try idle.withLock { $0.popLast() } ?? make()
        defer { idle.withLock { if $0.count < Self.maxIdle { $0.append(store) } } }
        return try body(store)
    }

    /// A store of its own for a long-running user (a prewarm), not returned to the pool.
    public func dedicated() throws -> ObjectStore { try make() }
}
