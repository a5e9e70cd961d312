import ArgumentParser
import Cache
import Foundation

/// Options of every command that uses a cache directory.
struct CacheOptions: ParsableArguments {
    @Option(name: .customLong("cache-dir"), help: "Cache directory (default: $CACHE_DIRECTORY, else $XDG_CACHE_HOME/soak, else ~/.cache/soak).")
    var cacheDir: String?

    @Option(name: .customLong("cache-size"), help: "Cache cap: bytes (500M, 20GiB, 1000000) or a share of its file system (50%). Default: no cap beyond keeping 5% of the file system free.")
    var cacheSize: String?

    func directory(env: [String: String]) -> String {
        let d = cacheDir ?? DiskCache.defaultDirectory(environment: env)
        return d.hasPrefix("/") ? d : FileManager.default.currentDirectoryPath + "/" + d
    }

    /// Opens the cache: `create` (commands that fill it) makes a missing or empty directory a
    /// cache; otherwise only an existing soak cache is opened and nothing is created.
    func open(env: [String: String], create: Bool) throws -> DiskCache {
        let cap = try capacity()
        return try DiskCache(directory: directory(env: env), capacity: cap, create: create)
    }

    /// `--cache-size`, checked before anything is created.
    func capacity() throws -> CacheCapacity {
        try cacheSize.map { try CacheCapacity(parsing: $0) } ?? .unlimited
    }
}
