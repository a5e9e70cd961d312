/// The version of this build, for `soak --version` and the `soak_build_info` metric.
///
/// The version is written here; the commit comes from `BuildInfo+Generated.swift`, which
/// `scripts/gen-buildinfo` writes (git-ignored) before the project's scripts build. A plain
/// `swift build` of a fresh clone has no such file and still builds: the commit is then unknown.
/// The generated file only adds a conformance to `GeneratedBuildInfo`, so no declaration here
/// depends on whether it exists.
public enum BuildInfo {
    public static let version = "0.1.0"
    /// The source commit (abbreviated hash, `-dirty` when the tree had changes), when the build
    /// recorded one (nil: unknown).
    public static let commit: String? = {
        guard let generated = (BuildInfo.self as Any) as? any GeneratedBuildInfo.Type,
              !generated.generatedCommit.isEmpty else { return nil }
        return generated.generatedCommit
    }()
    /// `soak --version`: `0.1.0 (commit 1a2b3c4d5e6f)`, or `(commit unknown)`.
    public static var versionLine: String { "\(version) (commit \(commit ?? "unknown"))" }
}

/// What `scripts/gen-buildinfo` records about the source a binary was built from.
public protocol GeneratedBuildInfo {
    static var generatedCommit: String { get }
}
