/// Recognises S3's "this bucket is in another region" answers, so the request can be signed
/// again for the right one (what the SDKs' S3 region redirectors do).
///
/// The region comes from the `x-amz-bucket-region` header or the error body's `<Region>`, and is
/// trusted only on the answers that mean a wrong region: 301 (PermanentRedirect) and 307
/// (TemporaryRedirect), and 400 AuthorizationHeaderMalformed / IllegalLocationConstraintException
/// (a request signed for the wrong region). A 2xx, a 403 or a 404 never moves the client.
public enum BucketRegion {
    /// The region to sign for instead of `current`, or nil when this response is no redirect.
    public static func redirect(status: Int, headerRegion: String?, body: S3ErrorBody?, current: String) -> String? {
        let isRedirect: Bool
        switch status {
        case 301, 307: isRedirect = true
        case 400:
            isRedirect = body?.code == "AuthorizationHeaderMalformed" || body?.code == "IllegalLocationConstraintException"
        default: isRedirect = false
        }
        guard isRedirect else { return nil }
        for candidate in [headerRegion, body?.region] {
            guard let r = candidate?.trimmingCharacters(in: .whitespaces), !r.isEmpty else { continue }
            return r == current ? nil : r
        }
        return nil
    }
}
