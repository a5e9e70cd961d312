/// Static keys from the environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, with
/// AWS_SESSION_TOKEN (or the older AWS_SECURITY_TOKEN). Half a pair is an error rather than a
/// silent fall-through, so a typo does not pick up other credentials.
import Foundation

public struct EnvironmentCredentialProvider: CredentialProvider {
    public let context: CredentialContext

    public init(context: CredentialContext) { self.context = context }

    public var name: String { "environment" }

    public func load() throws -> Credentials? {
        let key = context.env("AWS_ACCESS_KEY_ID"), secret = context.env("AWS_SECRET_ACCESS_KEY")
        switch (key, secret) {
        case let (k?, s?):
            var expiration: Date? = nil
            // botocore reads an expiry from the environment too, so refresh logic sees it.
            if let raw = context.env("AWS_CREDENTIAL_EXPIRATION"), let t = UTCTime.parseISO8601(raw) {
                expiration = Date(timeIntervalSince1970: t)
            }
            return Credentials(accessKeyId: k, secretAccessKey: s,
                               sessionToken: context.env("AWS_SESSION_TOKEN") ?? context.env("AWS_SECURITY_TOKEN"),
                               expiration: expiration)
        case (_?, nil):
            throw CredentialsError(.incomplete, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        case (nil, _?):
            throw CredentialsError(.incomplete, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
        case (nil, nil):
            return nil
        }
    }
}
