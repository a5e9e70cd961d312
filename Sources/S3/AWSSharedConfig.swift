/// The AWS shared config and credentials files (`~/.aws/config`, `~/.aws/credentials`).
///
/// A deliberately small INI reader with the AWS CLI's rules: `[section]` headers, `key = value`
/// (or `key: value`) pairs, whole-line comments starting with `#` or `;`, inline comments only
/// when the marker follows whitespace, case-insensitive keys, surrounding whitespace dropped.
/// An indented line under a key with an empty value is a nested setting (`s3 =` then
/// `  addressing_style = path`) and is stored as `s3.addressing_style`, so it can never shadow
/// a top-level key. Later duplicates win, as in botocore.
///
/// Profile lookup follows the CLI: the credentials file names a profile `[name]`; the config
/// file names it `[profile name]`, except the default profile, which is `[default]` (or
/// `[profile default]`).
import Foundation

public struct AWSSharedConfig: Sendable, Equatable {
    /// Section name (as written, inner whitespace collapsed) → lowercase key → value.
    public var sections: [String: [String: String]]

    public init(sections: [String: [String: String]] = [:]) { self.sections = sections }

    /// Parses INI text. Never fails: lines that are not understood are ignored.
    public init(parsing text: String) {
        var sections: [String: [String: String]] = [:]
        var current: String? = nil
        var nestParent: String? = nil
        // A byte-order mark (Windows editors) must not become part of the first section name.
        let text = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            var line = String(rawLine)
            if line.hasSuffix("\r") { line.removeLast() }
            let indented = line.first == " " || line.first == "\t"
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            if trimmed.hasPrefix("[") {
                guard let close = trimmed.firstIndex(of: "]") else { current = nil; continue }
                let name = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
                let normalized = name.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
                current = normalized
                nestParent = nil
                if sections[normalized] == nil { sections[normalized] = [:] }
                continue
            }
            guard let section = current else { continue }
            guard let sep = trimmed.firstIndex(where: { $0 == "=" || $0 == ":" }) else { continue }
            let key = trimmed[..<sep].trimmingCharacters(in: .whitespaces).lowercased()
            guard !key.isEmpty else { continue }
            let value = Self.stripInlineComment(String(trimmed[trimmed.index(after: sep)...]))
                .trimmingCharacters(in: .whitespaces)
            if indented, let parent = nestParent {
                sections[section]![parent + "." + key] = value
                continue
            }
            sections[section]![key] = value
            nestParent = value.isEmpty ? key : nil
        }
        self.sections = sections
    }

    /// Reads and parses a file; nil when it does not exist or cannot be read.
    public static func load(path: String) -> AWSSharedConfig? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return AWSSharedConfig(parsing: String(decoding: data, as: UTF8.self))
    }

    private static func stripInlineComment(_ s: String) -> String {
        var prevWasSpace = false
        for i in s.indices {
            let c = s[i]
            if (c == "#" || c == ";") && prevWasSpace { return String(s[..<i]) }
            prevWasSpace = c == " " || c == "\t"
        }
        return s
    }

    /// The settings of `profile` in a credentials file (`[name]`), if that section exists.
    public func credentialsProfile(_ profile: String) -> [String: String]? {
        sections[profile]
    }

    /// The settings of `profile` in a config file (`[profile name]`, or `[default]` for the
    /// default profile), if that section exists.
    public func configProfile(_ profile: String) -> [String: String]? {
        if profile == "default" {
            if let s = sections["default"] { return s }
        }
        return sections["profile \(profile)"]
    }

    // MARK: - Locating the files

    /// Expands a leading `~` or `~/` using `home`.
    static func expandTilde(_ path: String, home: String) -> String {
        if path == "~" { return home }
        if path.hasPrefix("~/") { return home + path.dropFirst(1) }
        return path
    }

    private static func nonEmpty(_ environment: [String: String], _ name: String) -> String? {
        guard let v = environment[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        return v
    }

    /// AWS_SHARED_CREDENTIALS_FILE, else `home/.aws/credentials`.
    public static func credentialsFilePath(environment: [String: String], home: String) -> String {
        expandTilde(nonEmpty(environment, "AWS_SHARED_CREDENTIALS_FILE") ?? "~/.aws/credentials", home: home)
    }

    /// AWS_CONFIG_FILE, else `home/.aws/config`.
    public static func configFilePath(environment: [String: String], home: String) -> String {
        expandTilde(nonEmpty(environment, "AWS_CONFIG_FILE") ?? "~/.aws/config", home: home)
    }

    /// AWS_PROFILE, else AWS_DEFAULT_PROFILE, else `default`.
    public static func profileName(environment: [String: String]) -> String {
        nonEmpty(environment, "AWS_PROFILE") ?? nonEmpty(environment, "AWS_DEFAULT_PROFILE") ?? "default"
    }

    /// Whether the profile was chosen explicitly (so a missing profile is an error, not a miss).
    static func profileIsExplicit(environment: [String: String]) -> Bool {
        nonEmpty(environment, "AWS_PROFILE") != nil || nonEmpty(environment, "AWS_DEFAULT_PROFILE") != nil
    }
}
