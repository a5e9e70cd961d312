/// The version of this build, for `soak --version` and the `soak_build_info` metric.
public enum BuildInfo {
    public static let version = "0.1.0"
    /// The source commit, when the build recorded one (nil: unknown).
    public static let commit: String? = nil
}
