/// The read-only FUSE view over the cache (part 3 of the plan).
///
/// FUSE callbacks run on libfuse's threads; this module will only unpack a request, dispatch
/// it to the cache or the scheduler, and reply, with errno mapping in one place. Part 1 only
/// proves the libfuse3 boundary links.
import CFuse

/// The libfuse3 version this build links against.
public func fuseVersion() -> String { String(cString: fuse_pkgversion()) }
