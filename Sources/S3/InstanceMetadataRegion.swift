/// The instance's region from EC2 instance metadata (`/latest/meta-data/placement/region`), the
/// region chain's last source before the default.
///
/// Same rules as the credential provider it extends: `AWS_EC2_METADATA_DISABLED`, the endpoint
/// variables, an IMDSv2 token first and IMDSv1 only after a 403/404/405 (not with
/// `AWS_EC2_METADATA_V1_DISABLED`), one attempt with a 1 s deadline. Any failure means "no
/// region here" (nil): a region is never worth an error. A token request that timed out is
/// remembered briefly, so the credential chain's IMDS step right after does not wait again.
import Foundation

extension InstanceMetadataCredentialProvider {
    static let regionPath = "/latest/meta-data/placement/region"

    public func region() -> String? {
        guard let base = try? endpoint() else { return nil }
        func send(_ method: String, _ path: String, _ headers: [(name: String, value: String)])
            -> CredentialHTTPResponse? {
            try? CredentialHTTP.send(method: method, url: base + path, headers: headers, timeout: timeout,
                                     transport: context.transport)
        }
        guard let tokenAnswer = tokenRequest(base) else { return nil }
        var headers: [(name: String, value: String)] = []
        switch tokenAnswer.status {
        case 200:
            let token = String(decoding: tokenAnswer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty, !token.contains(where: { $0 == "\r" || $0 == "\n" }) else { return nil }
            headers = [("X-aws-ec2-metadata-token", token)]
        case 403, 404, 405:
            if context.flag("AWS_EC2_METADATA_V1_DISABLED") { return nil }
        default:
            return nil
        }
        guard let answer = send("GET", Self.regionPath, headers), answer.status == 200 else { return nil }
        let region = String(decoding: answer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        // Only something shaped like a region goes into the signing scope and a host name.
        guard !region.isEmpty, region.count <= 64,
              region.unicodeScalars.allSatisfy({ ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "-" })
        else { return nil }
        return region
    }
}
