import Engine

/// The engine reports the filler's fetches through `FetchListener`; the conformance lives here,
/// beside the filler, because the engine does not know the cache.
extension CacheFiller: FetchListener {}
