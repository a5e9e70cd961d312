/// The proxy variables, read once in the coordinator and carried to workers in their transport
/// options, so every S3 request goes through the same proxy whatever environment a worker gets.
///
/// libcurl's own rules, which it applies when nothing is set explicitly: an `http://` URL uses
/// `http_proxy` (lowercase only: libcurl ignores `HTTP_PROXY`, which a CGI request could set);
/// `https://` uses `https_proxy`, else `HTTPS_PROXY`; either falls back to `all_proxy`, else
/// `ALL_PROXY`. `no_proxy`, else `NO_PROXY`, lists hosts that bypass the proxy (`*` for all);
/// 127.0.0.1 and localhost are proxied like any host unless listed there.
public struct ProxySettings: Sendable, Codable, Equatable {
    public var httpProxy: String?
    public var httpsProxy: String?
    public var noProxy: String?

    public init(httpProxy: String? = nil, httpsProxy: String? = nil, noProxy: String? = nil) {
        self.httpProxy = httpProxy; self.httpsProxy = httpsProxy; self.noProxy = noProxy
    }

    /// Nil when no proxy variable is set (libcurl then has nothing to read either).
    public static func fromEnvironment(_ env: [String: String]) -> ProxySettings? {
        func first(_ names: String...) -> String? {
            for n in names { if let v = env[n]?.trimmingCharacters(in: .whitespaces), !v.isEmpty { return v } }
            return nil
        }
        let all = first("all_proxy", "ALL_PROXY")
        let p = ProxySettings(httpProxy: first("http_proxy") ?? all, httpsProxy: first("https_proxy", "HTTPS_PROXY") ?? all,
                              noProxy: first("no_proxy", "NO_PROXY"))
        return p == ProxySettings() ? nil : p
    }

    /// The proxy for `url` (by its scheme), or nil to connect directly.
    public func proxy(for url: String) -> String? {
        url.hasPrefix("https://") ? httpsProxy : url.hasPrefix("http://") ? httpProxy : nil
    }
}
