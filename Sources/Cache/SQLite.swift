/// The only file that touches libsqlite3: a connection, prepared statements, transactions.
///
/// Connections are opened in WAL mode with a busy timeout, so several soak processes can share
/// one index: readers never block, writers take the lock with `BEGIN IMMEDIATE` and wait for
/// each other instead of failing. Every C return code is checked and turned into `SQLiteError`.
import CSQLite
import Foundation

/// A failed SQLite call: what was attempted, the result code and SQLite's own message.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public var code: Int32
    public var operation: String
    public var message: String
    public var description: String { "sqlite: \(operation) failed (\(code)): \(message)" }
    public var isBusy: Bool { code & 0xFF == SQLITE_BUSY || code & 0xFF == SQLITE_LOCKED }
    public var isConstraint: Bool { code & 0xFF == SQLITE_CONSTRAINT }
}

/// A value bound to or read from a statement.
public enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

public final class SQLiteDatabase {
    // Not Sendable: one connection belongs to one thread at a time (callers hold a lock).
    fileprivate let handle: OpaquePointer
    public let path: String
    /// How long a writer waits for another process's transaction before giving up.
    public static let busyTimeoutMs: Int32 = 30_000

    public init(path: String, readOnly: Bool = false) throws {
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
            | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, operation: "open \(path)", message: msg)
        }
        handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, Self.busyTimeoutMs)
    }

    deinit { sqlite3_close_v2(handle) }

    /// Runs one or more statements without results.
    public func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? lastMessage
            sqlite3_free(err)
            throw SQLiteError(code: rc, operation: String(sql.prefix(60)), message: msg)
        }
    }

    public func prepare(_ sql: String) throws -> SQLiteStatement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw SQLiteError(code: rc, operation: "prepare \(sql.prefix(60))", message: lastMessage)
        }
        return SQLiteStatement(db: self, stmt: stmt, sql: sql)
    }

    /// Runs `body` in a transaction. `immediate` takes the write lock up front, so two writers
    /// never deadlock upgrading from read to write.
    public func transaction<T>(immediate: Bool = true, _ body: () throws -> T) throws -> T {
        try exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN")
        do {
            let v = try body()
            try exec("COMMIT")
            return v
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    var lastMessage: String { String(cString: sqlite3_errmsg(handle)) }

    /// The SQLite library version this build links against.
    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }
}

public final class SQLiteStatement {
    private let db: SQLiteDatabase
    private let stmt: OpaquePointer
    let sql: String

    fileprivate init(db: SQLiteDatabase, stmt: OpaquePointer, sql: String) {
        self.db = db; self.stmt = stmt; self.sql = sql
    }
    deinit { sqlite3_finalize(stmt) }

    /// Resets the statement and binds `values` to ?1, ?2, …
    @discardableResult
    public func bind(_ values: [SQLValue]) throws -> SQLiteStatement {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
        for (i, v) in values.enumerated() {
            let n = Int32(i + 1)
            let rc: Int32
            switch v {
            case .null: rc = sqlite3_bind_null(stmt, n)
            case .int(let x): rc = sqlite3_bind_int64(stmt, n, x)
            case .real(let x): rc = sqlite3_bind_double(stmt, n, x)
            case .text(let s): rc = sqlite3_bind_text(stmt, n, s, -1, csqlite_transient())
            case .blob(let b):
                rc = b.withUnsafeBytes { sqlite3_bind_blob(stmt, n, $0.baseAddress, Int32($0.count), csqlite_transient()) }
            }
            guard rc == SQLITE_OK else { throw SQLiteError(code: rc, operation: "bind ?\(n) of \(sql.prefix(60))", message: db.lastMessage) }
        }
        return self
    }

    /// Steps once: true when a row is available.
    public func step() throws -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let e = SQLiteError(code: rc, operation: String(sql.prefix(60)), message: db.lastMessage)
        sqlite3_reset(stmt)
        throw e
    }

    /// Binds and runs a statement that returns no rows.
    public func run(_ values: [SQLValue] = []) throws {
        try bind(values)
        while try step() {}
        sqlite3_reset(stmt)
    }

    /// Binds, then calls `row` for every result row.
    public func query(_ values: [SQLValue] = [], _ row: (SQLiteStatement) throws -> Void) throws {
        try bind(values)
        defer { sqlite3_reset(stmt) }
        while try step() { try row(self) }
    }

    /// The first column of the first row, if any.
    public func scalarInt(_ values: [SQLValue] = []) throws -> Int64? {
        var out: Int64?
        try bind(values)
        defer { sqlite3_reset(stmt) }
        if try step(), !isNull(0) { out = int(0) }
        return out
    }

    public func int(_ col: Int32) -> Int64 { sqlite3_column_int64(stmt, col) }
    public func double(_ col: Int32) -> Double { sqlite3_column_double(stmt, col) }
    public func isNull(_ col: Int32) -> Bool { sqlite3_column_type(stmt, col) == SQLITE_NULL }
    public func isBlob(_ col: Int32) -> Bool { sqlite3_column_type(stmt, col) == SQLITE_BLOB }
    public func optionalDouble(_ col: Int32) -> Double? { isNull(col) ? nil : double(col) }
    public func text(_ col: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, col) else { return "" }
        let n = Int(sqlite3_column_bytes(stmt, col))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    public func blob(_ col: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, col))
        guard n > 0, let p = sqlite3_column_blob(stmt, col) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}
