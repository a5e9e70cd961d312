/// A snapshot for the progress display, of a download or a prewarm.
public struct DownloadProgress: Sendable, Codable {
    public var bytesDone: Int64
    public var bytesTotal: Int64
    public var objectsDone: Int
    public var objectsTotal: Int
    public var engine: EngineStats

    public init(bytesDone: Int64, bytesTotal: Int64, objectsDone: Int, objectsTotal: Int, engine: EngineStats) {
        self.bytesDone = bytesDone; self.bytesTotal = bytesTotal
        self.objectsDone = objectsDone; self.objectsTotal = objectsTotal; self.engine = engine
    }
}
