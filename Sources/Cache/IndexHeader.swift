/// What the first 100 bytes of an index file say about its owner, read as plain bytes (never
/// through SQLite): the SQLite database header holds `user_version` (big-endian, offset 60)
/// and `application_id` (offset 68), which soak sets to `CacheFormat.applicationID`.
import SoakCore
#if canImport(Glibc)
import Glibc
#endif

enum IndexHeader: Equatable {
    /// No file.
    case noFile
    /// A file of zero bytes (an index SQLite has opened but not yet written).
    case empty
    /// A SQLite database whose application_id is 0: nobody's yet (a new index whose first
    /// transaction is still in its WAL), or a program that sets none.
    case unowned
    /// soak's index, of this user_version (its format version).
    case soak(version: Int32)
    /// Not SQLite, or another application's SQLite database.
    case other

    static let sqliteMagic = Array("SQLite format 3\u{0}".utf8)
    static let userVersionOffset = 60
    static let applicationIDOffset = 68
    static let length = 100

    static func read(_ path: String) throws -> IndexHeader {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        if fd < 0 {
            if errno == ENOENT { return .noFile }
            if errno == ELOOP { return .other }
            throw CacheError.unusableDirectory(LocalIOError(errno: errno, operation: "open", path: path))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return .other }
        if st.st_size == 0 { return .empty }
        var buf = [UInt8](repeating: 0, count: length)
        // An unreadable header is a short one: not an index soak made.
        let got = buf.withUnsafeMutableBytes { (try? Syscall.preadAll(fd, into: $0, at: 0, path: path)) ?? 0 }
        return parse(Array(buf[0..<got]))
    }

    /// The header as of the last committed transaction in `wal` (the index's `-wal` file): a
    /// new index whose creating transaction was never checkpointed into the main file (every
    /// process that used it was killed) has its application_id only there. Frames are taken
    /// while their salts match the WAL header and their checksums chain (SQLite's own rule for
    /// which frames are valid); nil without a valid WAL or without page 1 in it.
    static func fromWAL(_ wal: String) -> IndexHeader? {
        let fd = open(wal, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        func readExactly(_ n: Int, at off: Int) -> [UInt8]? {
            var buf = [UInt8](repeating: 0, count: n)
            let got = buf.withUnsafeMutableBytes { try? Syscall.preadAll(fd, into: $0, at: Int64(off), path: wal) }
            return got == n ? buf : nil
        }
        func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
            UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
        }
        guard let h = readExactly(32, at: 0) else { return nil }
        let magic = u32(h, 0)
        guard magic == 0x377F_0682 || magic == 0x377F_0683 else { return nil }
        let bigEndian = magic & 1 == 1
        let pageSize = Int(u32(h, 8)) == 1 ? 65536 : Int(u32(h, 8))
        guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else { return nil }
        var s0: UInt32 = 0, s1: UInt32 = 0
        func checksum(_ b: [UInt8], _ range: Range<Int>) {
            for i in stride(from: range.lowerBound, to: range.upperBound, by: 8) {
                let x0 = bigEndian ? u32(b, i) : UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
                let x1 = bigEndian ? u32(b, i + 4)
                    : UInt32(b[i + 4]) | UInt32(b[i + 5]) << 8 | UInt32(b[i + 6]) << 16 | UInt32(b[i + 7]) << 24
                s0 = s0 &+ x0 &+ s1
                s1 = s1 &+ x1 &+ s0
            }
        }
        checksum(h, 0..<24)
        guard s0 == u32(h, 24), s1 == u32(h, 28) else { return nil }
        var committed: [UInt8]?, pending: [UInt8]?
        var off = 32
        while let f = readExactly(24 + pageSize, at: off) {
            guard u32(f, 8) == u32(h, 16), u32(f, 12) == u32(h, 20) else { break }
            checksum(f, 0..<8)
            checksum(f, 24..<(24 + pageSize))
            guard s0 == u32(f, 16), s1 == u32(f, 20) else { break }
            if u32(f, 0) == 1 { pending = Array(f[24..<(24 + length)]) }
            if u32(f, 4) != 0, let p = pending { committed = p }  // a commit frame ends a transaction
            off += 24 + pageSize
        }
        return committed.map(parse)
    }

    static func parse(_ b: [UInt8]) -> IndexHeader {
        guard b.count >= length, Array(b[0..<sqliteMagic.count]) == sqliteMagic else { return .other }
        func int32(_ at: Int) -> Int32 {
            Int32(bitPattern: UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3]))
        }
        let app = int32(applicationIDOffset)
        if app == 0 { return .unowned }
        guard app == CacheFormat.applicationID else { return .other }
        return .soak(version: int32(userVersionOffset))
    }
}
