import SoakCore

/// One object version as the index knows it.
public struct CachedObject: Sendable, Hashable, Codable {
    /// Row id: names the data file, never reused.
    public var id: Int64
    public var bucketID: Int64
    public var key: String
    public var etag: String
    public var size: Int64
    public var mtime: Double?
    /// Data-file generation (see `CacheFormat`).
    public var gen: Int64
    /// Bytes of present blocks.
    public var cachedBytes: Int64
    public var verified: Verification

    public init(id: Int64, bucketID: Int64, key: String, etag: String, size: Int64, mtime: Double?, gen: Int64,
                cachedBytes: Int64, verified: Verification) {
        self.id = id; self.bucketID = bucketID; self.key = key; self.etag = etag; self.size = size
        self.mtime = mtime; self.gen = gen; self.cachedBytes = cachedBytes; self.verified = verified
    }

    public var isComplete: Bool { cachedBytes >= size }
    /// This object's block and range arithmetic.
    public func blocks(blockSize: Int64) -> BlockRanges { BlockRanges(size: size, blockSize: blockSize) }
    public func blockCount(blockSize: Int64) -> Int { blocks(blockSize: blockSize).blockCount }
    /// Byte range of block `i` (inclusive), clipped to the object.
    public func blockRange(_ i: Int, blockSize: Int64) -> ClosedRange<Int64> {
        blocks(blockSize: blockSize).byteRange(ofBlock: i)
    }

    /// Whether the ETag can be an MD5 of the content: 32 hex digits, no `-N` multipart suffix.
    public var etagIsMD5: Bool { Self.isMD5Hex(etag) }

    /// 32 lowercase hex digits.
    static func isMD5Hex(_ etag: String) -> Bool {
        etag.utf8.count == 32 && etag.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// What is known of the whole object's MD5.
    public enum Verification: Int, Sendable, Codable {
        case unchecked = 0
        /// The MD5 of the cached bytes equals the ETag.
        case md5Match = 1
        /// The ETag is not an MD5 of the content (multipart upload, or SSE-KMS: seen twice).
        case notMD5 = 2
    }
}

/// `soak cache stats`.
public struct CacheStats: Sendable, Codable {
    public var directory: String
    public var formatVersion: Int32
    public var blockSize: Int64
    public var objects: Int64
    public var objectsWithData: Int64
    public var completeObjects: Int64
    public var blocks: Int64
    public var bytes: Int64
    public var capBytes: Int64?
    public var hits: Int64
    public var misses: Int64
    public var evictedBytes: Int64
    public var indexBytes: Int64
}

/// One line of `soak cache ls`.
public struct CacheEntry: Sendable, Codable {
    public var bucket: String
    public var key: String
    public var size: Int64
    public var cachedBytes: Int64
    public var etag: String
}

/// What `soak cache verify` found.
public struct VerifyReport: Sendable, Codable {
    public var objects = 0
    public var blocksChecked = 0
    public var bytesChecked: Int64 = 0
    /// Blocks whose bytes did not match their checksum (or were missing): dropped, fetched again on use.
    public var corruptBlocks = 0
    public var missingFiles = 0
    public var orphanFiles = 0
    /// Corruption that could not be dropped from the index.
    public var unrepaired: [String] = []
}
