"""The prewarmed cache checked without soak (python3 -m soaklib.cachecheck; scripts/bench-prewarm).

python3 -m soaklib.cachecheck CACHE MANIFEST PREFIX MD5(0/1): prints two lines:
  <index bytes per object> <index bytes> <objects> <marginal index bytes per object>
  ok | the problems found
Index size: index.db after a TRUNCATE checkpoint, plus a -wal if one is left. Marginal: the same
less what an empty index takes (one page per table and index), which dominates for few objects.
With MD5=1, every manifest entry must be an object in the index with cached == size, and the
first `size` bytes of its data file data/ID.GEN must have the manifest's MD5."""
import hashlib
import os
import sqlite3
import sys

from .report import read_lines


def main(argv):
    cache, manifest, prefix, check_md5 = argv[0], argv[1], argv[2], argv[3] == "1"
    db = os.path.join(cache, "index.db")
    con = sqlite3.connect(f"file:{db}?mode=rw", uri=True)  # never create one
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    rows = con.execute("SELECT o.key, o.id, o.gen, o.size, o.cached FROM objects o").fetchall()
    empty = (1 + con.execute("SELECT count(*) FROM sqlite_schema WHERE rootpage > 0").fetchone()[0]) \
        * con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    size = os.path.getsize(db) + (os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)
    n = max(len(rows), 1)
    print(f"{size / n:.1f} {size} {len(rows)} {(size - empty) / n:.1f}")
    if not check_md5:
        print("ok"); return 0
    want = {}
    for line in read_lines(manifest):
        md5, name = line.rstrip("\n").split("  ", 1)
        want[name] = md5
    problems, counts = [], {"missing": 0, "unexpected": 0, "incomplete": 0, "no data file": 0, "md5 mismatch": 0}
    def problem(kind, key):
        counts[kind] += 1
        if len(problems) < 3:
            problems.append(f"{kind}: {key}")
    seen = set()
    for key, oid, gen, osize, cached in rows:
        rel = key[len(prefix):] if key.startswith(prefix) else None
        if rel not in want:
            problem("unexpected", key); continue
        seen.add(rel)
        if cached != osize:
            problem("incomplete", f"{key} cached {cached} of {osize}"); continue
        path = os.path.join(cache, "data", f"{oid}.{gen}")
        h, left = hashlib.md5(), osize
        try:
            with open(path, "rb") as f:
                while left > 0:
                    b = f.read(min(left, 1 << 20))
                    if not b:
                        break
                    h.update(b); left -= len(b)
        except OSError:
            problem("no data file", path); continue
        if left > 0 or h.hexdigest() != want[rel]:
            problem("md5 mismatch", key)
    for rel in want:
        if rel not in seen:
            problem("missing", prefix + rel)
    bad = {k: v for k, v in counts.items() if v}
    print("ok" if not bad else "CACHE " + ", ".join(f"{v} {k}" for k, v in bad.items()) + " (e.g. " + "; ".join(problems) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
