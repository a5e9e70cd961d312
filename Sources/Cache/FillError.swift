import Engine
import S3

/// Why a fill did not complete.
public enum FillError: Error, Sendable, CustomStringConvertible {
    case fetch(S3Error)
    /// 412 on If-Match: the object changed since it was listed.
    case changed(key: String)
    /// 412 on If-Match and HEAD shows version `now`: the old version's blocks were dropped.
    case replaced(key: String, now: ObjectInfo)
    /// 412 on If-Match and HEAD answers 404: the old version's blocks were dropped.
    case deleted(key: String)
    /// The object's data was dropped (evicted, replaced) before the fill finished.
    case evicted(key: String)
    case local(String)

    public var description: String {
        switch self {
        case .fetch(let e): return e.description
        case .changed(let k): return "\(k) changed since it was listed (412 on If-Match); its cached blocks were dropped"
        case .replaced(let k, let now):
            return "\(k) changed since it was listed (now ETag \(now.etag)); its cached blocks were dropped"
        case .deleted: return VersionAnswer.gone.failureReason(listedETag: "")
        case .evicted(let k): return "\(k) was evicted before it was complete (is --cache-size smaller than the data?)"
        case .local(let s): return s
        }
    }

    /// The fetched version is no more: its blocks are dropped.
    var droppedVersion: Bool {
        switch self {
        case .changed, .replaced, .deleted: return true
        case .fetch, .evicted, .local: return false
        }
    }
}
