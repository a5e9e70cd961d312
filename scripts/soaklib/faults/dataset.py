"""The fault suite's seeded dataset and its manifest."""
import hashlib
import os
import random


def write(src, quick, seed):
    """Objects under src/tree (full: 20 of 0..3 MiB incl. an empty one and nested keys, plus a 12 MiB
    one; quick: 8 of 0..1 MiB) and src/multi20m (uploaded as a multipart object)."""
    rnd = random.Random(seed)
    n, top = (8, 1 << 20) if quick else (20, 3 << 20)
    names = ["empty"] + ["obj%02d" % i for i in range(1, n)]
    for i, name in enumerate(names):
        if i % 4 == 1: name = "nested/a/" + name
        if i % 4 == 2: name = "nested/b/deeper/" + name
        size = 0 if name == "empty" else rnd.randint(1, top)
        p = os.path.join(src, "tree", name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f: f.write(rnd.randbytes(size))
    if not quick:
        with open(os.path.join(src, "tree", "big12m"), "wb") as f: f.write(rnd.randbytes(12 << 20))
    with open(os.path.join(src, "multi20m"), "wb") as f: f.write(rnd.randbytes(20 << 20))


def manifest(src):
    """Lines "relative key TAB size TAB sha256", sorted; the multipart object as big/multi20m."""
    rows = []
    for d, _, fs in os.walk(os.path.join(src, "tree")):
        for f in fs:
            p = os.path.join(d, f)
            rows.append((os.path.relpath(p, os.path.join(src, "tree")), p))
    rows.append(("big/multi20m", os.path.join(src, "multi20m")))
    out = []
    for rel, p in sorted(rows):
        with open(p, "rb") as f:
            data = f.read()
        out.append("%s\t%d\t%s" % (rel, len(data), hashlib.sha256(data).hexdigest()))
    return out
