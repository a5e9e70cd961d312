/// Web identity (EKS IRSA and other OIDC federations): a token file plus a role, exchanged with
/// STS `AssumeRoleWithWebIdentity`.
///
/// From the environment (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`, `AWS_ROLE_SESSION_NAME`)
/// or from a profile (`web_identity_token_file`, `role_arn`, `role_session_name`). The token file
/// is read again on every load: the kubelet rotates it, and an old token is refused.
import Foundation

public struct WebIdentityCredentialProvider: CredentialProvider {
    public let context: CredentialContext
    /// Where the settings come from, for messages (`web identity (environment)`).
    public let name: String
    public let tokenFile: String?
    public let roleArn: String?
    public let sessionName: String?
    public let durationSeconds: Int?

    /// The provider for the environment's variables.
    public static func fromEnvironment(_ context: CredentialContext) -> WebIdentityCredentialProvider {
        WebIdentityCredentialProvider(context: context, name: "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)",
                                      tokenFile: context.env("AWS_WEB_IDENTITY_TOKEN_FILE"),
                                      roleArn: context.env("AWS_ROLE_ARN"),
                                      sessionName: context.env("AWS_ROLE_SESSION_NAME"), durationSeconds: nil)
    }

    public init(context: CredentialContext, name: String, tokenFile: String?, roleArn: String?,
                sessionName: String?, durationSeconds: Int?) {
        self.context = context
        self.name = name
        self.tokenFile = tokenFile
        self.roleArn = roleArn
        self.sessionName = sessionName
        self.durationSeconds = durationSeconds
    }

    public func load() throws -> Credentials? {
        guard let tokenFile else { return nil }
        guard let roleArn else {
            throw CredentialsError(.invalidConfig, "\(name): a web identity token file is set but no role ARN "
                                   + "(AWS_ROLE_ARN or the profile's role_arn)")
        }
        let path = AWSSharedConfig.expandTilde(tokenFile, home: context.home)
        guard let data = FileManager.default.contents(atPath: path) else {
            let why = FileManager.default.fileExists(atPath: path) ? "unreadable" : "no such file"
            throw CredentialsError(.failed, "\(name): cannot read the token file \(path) (\(why))")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else {
            throw CredentialsError(.failed, "\(name): the token file \(path) is empty")
        }
        let sts = STSClient(context: context)
        let request = STSClient.RoleRequest(roleArn: roleArn,
                                            sessionName: sessionName ?? STSClient.defaultSessionName(now: context.now()),
                                            durationSeconds: durationSeconds)
        return try sts.assumeRoleWithWebIdentity(request, token: token, what: name)
    }
}
