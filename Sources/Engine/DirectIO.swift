/// Which fetches a worker writes with O_DIRECT (`SOAK_DIRECT_IO`: true, false, auto).
///
/// O_DIRECT skips the page cache: no page to fault in per 4 KiB written (costly on a VM that
/// hands freed memory back to its host), and the data tools' cached pages are not pushed out by
/// a bulk copy. It needs aligned 1 MiB staging buffers and a writer thread (`DirectWriter`), and
/// leaves nothing in the page cache for a file's next reader. Written inline by the worker's
/// loop, each O_DIRECT write stopped its transfers: less CPU than buffered, but slower (figures:
/// docs/BENCHMARKS.md, write path).
public enum DirectIO: String, Sendable, Equatable {
    /// Everything through the page cache.
    case never
    /// The parts of objects too large for one request (a download's partial files): big
    /// sequential writes that gain most. Whole small objects and cache blocks, which a reader
    /// may want right after, stay in the page cache.
    case largeParts
    /// Every fetch.
    case always

    func applies(to o: FetchOrder) -> Bool {
        switch self {
        case .never: return false
        case .always: return true
        case .largeParts: return o.publish == nil && o.blockSize == nil
        }
    }
}
