/// The read-only FUSE view over the cache (`soak mount`).
///
/// How it works: `MountService` lists the prefix into the cache index, builds the directory
/// tree from it (`Namespace`: implicit directories from `/`, `key/` markers, deterministic
/// handling of names Linux cannot show), starts the engine and the fill scheduler, and mounts
/// with libfuse3's low-level API (`FuseBridge.swift`, the only file that touches libfuse).
/// `MountFilesystem` answers requests: metadata from the namespace, data from `DiskCache` on a
/// hit (synchronously on the FUSE thread) or, on a miss, from blocks fetched in the urgent lane
/// and replied to when they land. Everything that would write returns EROFS.
