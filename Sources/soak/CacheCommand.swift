import ArgumentParser
import Cache
import Foundation
import SoakCore

/// `soak cache stats|ls|verify|evict|clear`.
struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Inspect and manage the cache directory.",
        subcommands: [Stats.self, List.self, Verify.self, Evict.self, Clear.self])

    /// Options of every `soak cache` subcommand.
    struct Common: ParsableArguments {
        @OptionGroup var cache: CacheOptions
        @Flag(help: "Machine-readable JSON output.") var json = false
        @Option(name: .customLong("log-level"), help: "debug, info, warning or error.") var logLevel: String = "warning"

        /// Opens an existing soak cache only: these commands never create one.
        func open() throws -> DiskCache {
            SoakLogging.bootstrap(level: try SoakLogging.parseLevel(logLevel))
            return try cache.open(env: ProcessInfo.processInfo.environment, create: false)
        }
    }

    /// `s3://bucket/prefix`, `bucket/prefix` or nothing (everything).
    static func scope(_ s: String?) throws -> (bucket: String?, prefix: String) {
        guard let s, !s.isEmpty else { return (nil, "") }
        if s.hasPrefix("s3://") {
            let u = try S3URI(parsing: s)
            // A prefix given here is a key prefix, not a directory: keep what was typed.
            let typed = s.dropFirst(5).drop { $0 != "/" }.dropFirst()
            return (u.bucket, String(typed))
        }
        let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
    }

    static func printJSON<T: Encodable>(_ v: T) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        print(String(decoding: try enc.encode(v), as: UTF8.self))
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Objects, bytes, blocks, hits and misses, cap.")
        @OptionGroup var common: Common
        func run() throws {
            let s = try common.open().stats()
            if common.json { try printJSON(s); return }
            func mb(_ b: Int64) -> String { String(format: "%.1f MB", Double(b) / 1e6) }
            print("""
                cache:        \(s.directory) (format \(s.formatVersion), \(s.blockSize >> 20) MiB blocks)
                objects:      \(s.objects) listed, \(s.objectsWithData) with data, \(s.completeObjects) complete
                data:         \(mb(s.bytes)) in \(s.blocks) blocks; cap \(s.capBytes.map(mb) ?? "none")
                reads:        \(s.hits) hits, \(s.misses) misses
                evicted:      \(mb(s.evictedBytes)) so far
                index:        \(mb(s.indexBytes)) on disk
                """)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "Cached objects under a prefix.")
        @OptionGroup var common: Common
        @Argument(help: "s3://BUCKET/PREFIX or BUCKET/PREFIX (default: everything).") var prefix: String?
        @Flag(help: "Also list objects known from listings but holding no data.") var all = false
        func run() throws {
            let (bucket, p) = try CacheCommand.scope(prefix)
            let entries = try common.open().index.list(bucket: bucket, prefix: p, onlyCached: !all)
            if common.json { for e in entries { try printJSON(e) }; return }
            for e in entries {
                let pct = e.size > 0 ? Double(e.cachedBytes) * 100 / Double(e.size) : 100
                print(String(format: "%12lld %5.1f%%  s3://%@/%@", e.size, pct, e.bucket, e.key))
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every cached block against its checksum; drop bad blocks (fetched again on use).",
            discussion: "Exit status 1 if corruption was found that could not be dropped from the index.")
        @OptionGroup var common: Common
        func run() throws {
            let r = try common.open().verify()
            if common.json { try printJSON(r) } else {
                print(String(format: "checked %d blocks (%.1f MB) of %d objects: %d corrupt or missing (dropped; fetched again on use), %d orphan files removed",
                             r.blocksChecked, Double(r.bytesChecked) / 1e6, r.objects, r.corruptBlocks, r.orphanFiles))
                for u in r.unrepaired { print("  could not repair: \(u)") }
            }
            if !r.unrepaired.isEmpty { throw ExitCode(ExitStatus.failure) }
        }
    }

    struct Evict: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop the cached data under a prefix (listings stay).",
            discussion: "Evicting everything takes --all: an empty prefix is an error, never \"everything\".")
        @OptionGroup var common: Common
        @Argument(help: "s3://BUCKET/PREFIX or BUCKET/PREFIX (BUCKET/ for a whole bucket).") var prefix: String?
        @Flag(help: "Evict the data of every bucket and prefix (instead of a prefix).") var all = false
        func run() throws {
            let (bucket, p): (String?, String)
            switch (prefix, all) {
            case (nil, true): (bucket, p) = (nil, "")
            case (.some, true): throw UsageError("cache evict: give a prefix or --all, not both")
            case (nil, false): throw UsageError("cache evict: missing prefix (s3://BUCKET/PREFIX); evicting everything takes --all")
            case (.some(let s), false):
                (bucket, p) = try CacheCommand.scope(s)
                guard let b = bucket, !b.isEmpty else {
                    throw UsageError("cache evict: '\(s)' names no bucket (s3://BUCKET/PREFIX); evicting everything takes --all")
                }
            }
            let r = try common.open().evict(bucket: bucket, prefix: p)
            if common.json { try printJSON(["objects": Int64(r.objects), "bytes": r.bytes]); return }
            print(String(format: "evicted %d objects (%.1f MB)", r.objects, Double(r.bytes) / 1e6))
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Empty the cache: every listing, block and data file.")
        @OptionGroup var common: Common
        func run() throws {
            let c = try common.open()
            try c.clear()
            if common.json { try printJSON(["cleared": c.directory]); return }
            print("cleared \(c.directory)")
        }
    }
}
