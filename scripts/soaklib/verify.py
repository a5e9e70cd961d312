"""Checksums of files and trees against a manifest: every byte a run leaves is compared."""
import hashlib
import os

CHUNK = 1 << 20  # read size: large enough to be cheap per call, small enough to stay out of RSS


def file_digest(path, algo="sha256", size=None):
    """Hex digest of path (of its first `size` bytes when given); None when it is shorter than size."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        left = size
        while left is None or left > 0:
            b = f.read(CHUNK if left is None else min(CHUNK, left))
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
    return None if left else h.hexdigest()


def tree_files(root, skip_dirs=()):
    """Relative paths of the regular files under root, sorted; directories named in skip_dirs (at
    any depth) are not entered. Symlinks are listed, not followed."""
    out = []
    for d, ds, fs in os.walk(root):
        ds[:] = sorted(x for x in ds if x not in skip_dirs)
        for f in fs:
            out.append(os.path.normpath(os.path.relpath(os.path.join(d, f), root)))
    return sorted(out)


def tree_manifest(root, algo="sha256", skip_dirs=()):
    """{relative path: (size, hex digest)} of every file under root."""
    m = {}
    for rel in tree_files(root, skip_dirs):
        p = os.path.join(root, rel)
        m[rel] = (os.lstat(p).st_size, file_digest(p, algo))
    return m


def verify_tree(root, expected, algo="sha256", exact=True, skip_dirs=()):
    """Compares the files under root with expected {rel: (size, digest)}. Returns a list of problems
    (empty: every byte right); exact: files that are not expected are problems too."""
    probs = []
    have = set(tree_files(root, skip_dirs)) if os.path.isdir(root) else set()
    for rel in sorted(expected):
        size, digest = expected[rel]
        if rel not in have:
            probs.append(f"missing: {rel}")
            continue
        p = os.path.join(root, rel)
        st = os.lstat(p)
        if st.st_size != size:
            probs.append(f"wrong size: {rel} ({st.st_size}, expected {size})")
        elif file_digest(p, algo) != digest:
            probs.append(f"wrong bytes: {rel}")
    if exact:
        probs += [f"unexpected file: {rel}" for rel in sorted(have - set(expected))]
    return probs


def read_manifest_tsv(path):
    """rel TAB size TAB sha256 [TAB source path] lines -> {rel: (size, sha256, source or None)}."""
    m = {}
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 3:
                continue
            m[p[0]] = (int(p[1]), p[2], p[3] if len(p) > 3 else None)
    return m


def read_md5sum(path):
    """`md5sum` output (digest, two spaces or space-star, name) -> {name: digest}."""
    m = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            digest, _, name = line.partition(" ")
            m[name[1:] if name[:1] in ("*", " ") else name] = digest
    return m
