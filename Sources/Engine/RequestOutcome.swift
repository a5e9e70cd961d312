/// The `status` label of `soak_s3_requests_total`, from the coordinator's view of a worker's
/// report: workers do not report the status of a request that succeeded, so success is `ok`.
import S3

public enum RequestOutcome {
    public static func label(_ error: S3Error?) -> String {
        guard let error else { return "ok" }
        switch error.kind {
        case .http: return error.status > 0 ? String(error.status) : "http"
        case .transport: return "transport_error"
        case .stalled: return "stalled"
        case .shortBody: return "short_body"
        case .invalidResponse: return "invalid_response"
        case .localIO: return "local_error"
        }
    }
}
