// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "soak",
    platforms: [.macOS(.v15)],  // Synchronization.Mutex
    products: [
        .executable(name: "soak", targets: ["soak"]),
    ],
    // Exact versions: Package.resolved is not committed, so these pins are what makes a build repeatable.
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "3.12.3"),
        .package(url: "https://github.com/apple/swift-collections", exact: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
    ],
    targets: [
        // C libraries from Debian, each behind a thin prefixed shim header.
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CFuse", path: "Sources/CFuse", pkgConfig: "fuse3",
                       providers: [.apt(["libfuse3-dev"])]),
        // Linux calls Swift's Glibc module leaves out (pipe2, prctl, xattrs).
        .systemLibrary(name: "CSys", path: "Sources/CSys"),
        // The checksum kernels: CRC32C and the MD5 block function over SIMD lanes (header-only C).
        .systemLibrary(name: "CKernels", path: "Sources/CKernels"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),

        // Shared vocabulary: errors, logging, key filters, path safety, retry policy, clocks.
        .target(name: "SoakCore", dependencies: ["CKernels",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // S3 client: SigV4, credentials, listing XML, libcurl transport.
        .target(name: "S3", dependencies: [
            "SoakCore", "CCurl", "CSys",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The engine: lanes, scheduler, fetch transport, multi-process worker pool and its workers,
        // optimizer. It knows files and byte ranges, not the cache.
        .target(name: "Engine", dependencies: [
            "SoakCore", "S3", "CSys",
            .product(name: "Collections", package: "swift-collections"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // On-disk block cache with a SQLite index, and its fill over the engine (CacheFiller, Prewarmer).
        .target(name: "Cache", dependencies: ["SoakCore", "S3", "Engine", "CSQLite", "CSys",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log")]),
        // `soak download`: plain files in DEST over the engine, resumable, published whole.
        .target(name: "Download", dependencies: ["SoakCore", "S3", "Engine", "CSys",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log")]),
        // Read-only FUSE view over the cache.
        .target(name: "Mount", dependencies: ["SoakCore", "S3", "Cache", "Engine", "CFuse",
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log")]),
        .executableTarget(name: "soak", dependencies: [
            "SoakCore", "S3", "Engine", "Cache", "Download", "Mount",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Seeds and generators shared by the seeded property tests.
        .target(name: "FuzzSupport", dependencies: ["SoakCore"], path: "Tests/FuzzSupport"),
        // Fakes for unit tests (no part of soak): MemoryObjectStore, FaultInjectingStore,
        // StoreTransport, which runs fetch orders in-process against any ObjectStore, and StoreFixture.
        .target(name: "SoakTestSupport", dependencies: ["S3", "SoakCore", "Engine",
            .product(name: "Crypto", package: "swift-crypto")], path: "Tests/SoakTestSupport"),
        .testTarget(name: "SoakCoreTests", dependencies: ["SoakCore", "FuzzSupport",
            .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "S3Tests", dependencies: ["S3", "SoakCore", "FuzzSupport", "SoakTestSupport"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "S3", "SoakCore", "SoakTestSupport",
            .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "CacheTests", dependencies: ["Cache", "Engine", "S3", "SoakCore", "SoakTestSupport",
            .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "DownloadTests", dependencies: ["Download", "Engine", "S3", "SoakCore", "SoakTestSupport",
            .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "MountTests", dependencies: ["Mount", "Cache", "Engine", "FuzzSupport", "SoakTestSupport", .product(name: "Logging", package: "swift-log")]),
        // The command line's own logic (soak doctor's verdicts), through @testable import of the executable.
        .testTarget(name: "SoakCLITests", dependencies: ["soak", "Cache", "S3", "SoakCore"]),
        .testTarget(name: "IntegrationTests", dependencies: ["Engine", "S3", "SoakCore", "Cache", "Download", "Mount"]),
    ],
    swiftLanguageModes: [.v6]
)
