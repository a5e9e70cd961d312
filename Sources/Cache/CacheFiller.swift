/// Fetches blocks of cached objects into a `DiskCache` through the engine, each block at most
/// once, and records them durably.
///
/// How it works. `fill` takes the blocks a caller wants (prewarm: every missing block in the
/// bulk lane; the mount: the blocks under a read, urgently). Three parts, each with its own lock:
/// - `FillScheduler`: blocks already present are skipped; blocks some earlier request is
///   already fetching are not fetched again: the new request waits on that fetch, and promotes
///   it if it asked for a higher lane. The rest are cut into runs of up to `maxRunBlocks` and
///   submitted as block orders: the worker reports a CRC32C per block.
/// - `FillCommitter`: completions go to one committer thread, which makes everything that
///   landed durable with a single `syncfs`, records it in the index, and only then has the
///   scheduler answer the waiting requests.
/// - `FillVerifier`, the integrity checks: a complete object whose ETag is an MD5 is hashed
///   from its file, up to sixteen objects side by side (`FileMD5`): while the commit that
///   records it syncs when one order fetched it whole (`prehash`), else after that commit. A
///   prewarm's request is answered after that check. A mismatch drops the data and fetches the
///   object once more; a second mismatch means the ETag is not an MD5 (SSE-KMS) and is recorded
///   as such.
/// This type joins them and turns the engine's completions into landed blocks. A 412 (the
/// object changed) drops the old version's blocks; with the engine's `versionCheck` only once
/// HEAD confirmed a new version or a deletion (`.replaced` names the new version for the caller
/// to record and fill).
import Engine
import Foundation
import Logging
import S3
import SoakCore

public final class CacheFiller: Sendable {
    public typealias Done = @Sendable (CachedObject, FillError?) -> Void

    /// A run is as long as the download's part (`Downloader.defaultPartSize`), so prewarm and
    /// download send the server the same request sizes.
    public static let defaultMaxRunBlocks = 8
    /// Landed blocks are committed at most this often: each commit is a `syncfs` plus a
    /// transaction, and back-to-back syncs cost kernel time without making anything safer.
    public static let commitInterval = 0.2

    public let cache: DiskCache
    private let logger: Logger
    let scheduler: FillScheduler
    let verifier: FillVerifier
    let committer: FillCommitter

    /// `backgroundVerify`: MD5 checks wait while blocks are being fetched (at most
    /// `IdleQueue.defaultMaxDeferral`) and run at the lowest CPU priority, so a mount's readers
    /// never compete with them; off (prewarm), they run alongside the fetches.
    public init(cache: DiskCache, submitter: FetchSubmitter, logger: Logger, maxRunBlocks: Int = defaultMaxRunBlocks,
                verifyMD5: Bool = true, backgroundVerify: Bool = false, commitInterval: Double = CacheFiller.commitInterval) {
        self.cache = cache
        self.logger = logger
        scheduler = FillScheduler(cache: cache, submitter: submitter, maxRunBlocks: maxRunBlocks)
        verifier = FillVerifier(cache: cache, scheduler: scheduler, logger: logger, enabled: verifyMD5,
                                background: backgroundVerify)
        committer = FillCommitter(cache: cache, scheduler: scheduler, verifier: verifier, logger: logger,
                                  interval: commitInterval)
    }

    /// Stops the committer after it has recorded everything already landed.
    public func stop() {
        committer.stop()
        verifier.stop()
    }

    /// Blocks being fetched now (for `soak status` and tests).
    public var pendingBlocks: Int { scheduler.pendingBlocks }

    /// Runs just before a commit with the number of objects queued for hashing so far (tests
    /// hold a commit here).
    var beforeCommit: (@Sendable (Int) -> Void)? {
        get { committer.beforeCommit }
        set { committer.beforeCommit = newValue }
    }

    /// Objects hashed from their files so far (for tests).
    var filesHashed: Int { verifier.filesHashed }

    /// Fetches `blocks` of `object` (all missing blocks when nil) unless present or already on
    /// their way; `done` runs once every one of them is recorded or failed.
    /// `whenLanded`: answered as soon as the blocks are written, before they are recorded (a
    /// mount read). `runBlocks` caps the blocks per fetch for this request (default
    /// `maxRunBlocks`): smaller runs spread a reader's read-ahead over several connections.
    public func fill(_ object: CachedObject, bucket: String, blocks wanted: [Int]? = nil, lane: Lane,
                     whenLanded: Bool = false, runBlocks: Int? = nil, done: @escaping Done) {
        scheduler.fill(object, bucket: bucket, blocks: wanted, lane: lane, whenLanded: whenLanded,
                       runBlocks: runBlocks, done: done)
    }

    /// The engine's completion callback (engine thread): hands what landed to the committer.
    public func completed(_ c: FetchCompletion) {
        guard let job = scheduler.job(c.tag) else { return }
        let o = job.object
        var blocks = landedBlocks(job, from: 0, crcs: Array(c.crcs.prefix(job.count)))
        var error: FillError?
        if let e = c.error {
            switch (e.isPreconditionFailed, c.version) {
            case (false, _): error = .fetch(e)
            case (true, nil): error = .changed(key: o.key)
            case (true, .changed(let now)?): error = .replaced(key: o.key, now: now)
            case (true, .gone?): error = .deleted(key: o.key)
            case (true, let answer?):
                // Same ETag (attempts ran out) or HEAD failed: the blocks that landed are of
                // the version the row names, and are kept.
                error = .local(answer.failureReason(listedETag: o.etag))
            }
            if e.isPreconditionFailed && error?.droppedVersion == true {
                blocks = []
                // Drop the old version before anyone waiting hears of it, so what they do next
                // (a mount reader reopening) sees the new generation.
                do { try cache.dropData(o) } catch { logger.warning("could not drop \(o.key): \(error)") }
            }
        } else if blocks.count != job.count {
            error = .local("\(o.key): worker reported \(c.crcs.count) block checksums for \(job.count) blocks")
        }
        if error == nil { cache.noteLanded(blocks) }
        scheduler.answerEarly(c.tag, landed: Set(job.blocks), error: error, finished: true)
        committer.add(FillCommitter.Landed(job: c.tag, blocks: blocks, error: error, urgent: job.lane < .bulk))
    }

    /// The engine's report that some blocks of a job are written (before the job is done).
    public func blocksLanded(tag jid: Int, first: Int, crcs: [UInt32]) {
        guard let job = scheduler.job(jid) else { return }
        let blocks = landedBlocks(job, from: first, crcs: crcs)
        cache.noteLanded(blocks)
        scheduler.answerEarly(jid, landed: Set(blocks.map(\.index)), error: nil)
    }

    /// The blocks of `job` from its `first`-th on whose CRCs the worker reported.
    private func landedBlocks(_ job: FillScheduler.Job, from first: Int, crcs: [UInt32]) -> [CacheIndex.LandedBlock] {
        let o = job.object
        let bs = cache.blockSize
        return crcs.enumerated().compactMap { k, crc in
            guard first + k < job.count else { return nil }
            let i = job.first + first + k
            return CacheIndex.LandedBlock(objectID: o.id, gen: o.gen, index: i, crc: crc,
                                          bytes: o.blockRange(i, blockSize: bs).count64)
        }
    }
}
