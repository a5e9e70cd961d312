"""Snapshots of what survived a kill: a download's visible files and .soak-partial parts, a cache's
recorded blocks (index.db read from a copy, or live through SQLite's backup API), each checked byte
for byte against the source."""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile

from . import state as C
from .state import M, sha_file, src_range


# ---- download snapshots
def snap_download(dest):
    s = {"files": {}, "parts": {}, "complete": 0, "durable": 0, "problems": []}
    for d, ds, fs in os.walk(dest):
        rd = os.path.relpath(d, dest)
        if rd == ".soak-partial" or rd.startswith(".soak-partial/"): continue
        for f in fs:
            rel = os.path.normpath(os.path.join(rd, f)); st = os.lstat(os.path.join(dest, rel))
            if rel not in C.MAN:
                s["problems"].append("unexpected file in DEST: %r" % rel); continue
            size, sha, _ = C.MAN[rel]
            if st.st_size != size or sha_file(os.path.join(dest, rel), size) != sha:
                s["problems"].append("WRONG BYTES in %s, visible under its name (size %d)" % (rel, st.st_size)); continue
            s["files"][rel] = (st.st_ino, st.st_mtime_ns)
            s["complete"] += size
    pdir = os.path.join(dest, ".soak-partial")
    for f in sorted(os.listdir(pdir)) if os.path.isdir(pdir) else []:
        if not f.endswith(".state"): continue
        try: st = json.load(open(os.path.join(pdir, f)))
        except Exception as e:
            s["problems"].append("unreadable state %s: %s" % (f, e)); continue
        rel = st["key"][len(C.PREFIX):]
        if rel not in C.MAN or rel in s["files"]: continue
        size, ps, done = st["size"], st["partSize"], set(st["done"])
        try: data = open(os.path.join(pdir, f[:-6] + ".part"), "rb")
        except OSError:
            s["problems"].append("state %s without its data file" % rel); continue
        n = 0
        with data:
            for i in sorted(done):
                a = i * ps; b = min(size, a + ps)
                data.seek(a)
                if data.read(b - a) != src_range(rel, a, b - a):
                    s["problems"].append("WRONG BYTES in done part %d of %s's partial file" % (i, rel))
                n += b - a
        s["parts"][rel] = (done, ps)
        s["durable"] += n
    return s


def download_monotonic(a, b):
    probs = []
    for rel, ino in a["files"].items():
        if b["files"].get(rel) != ino: probs.append("complete file %s was replaced or lost by the next run" % rel)
    for rel, (done, _) in a["parts"].items():
        nd = b["parts"].get(rel, (set(), 0))[0]
        if rel not in b["files"] and not done <= nd:
            probs.append("done parts of %s were lost by the next run (%s -> %s)" % (rel, sorted(done), sorted(nd)))
    return probs


# ---- cache snapshots
def snap_cache(cdir, live=False):
    """The index's objects and blocks. Nobody running: read a copy of index.db(+wal), so the snapshot
    changes nothing (no WAL replay or checkpoint in place). live: a consistent read through SQLite's
    backup API while soak writes (WAL readers do not block it)."""
    s = {"blocks": {}, "gens": {}, "present": 0, "problems": [], "objs": {}}
    if not os.path.exists(os.path.join(cdir, "index.db")): return s
    tmp = tempfile.mkdtemp(dir=C.WORK)
    try:
        if live:
            src = sqlite3.connect("file:%s?mode=ro" % os.path.join(cdir, "index.db"), uri=True, timeout=10)
            c = sqlite3.connect(":memory:")
            src.backup(c); src.close()
        else:
            for f in ("index.db", "index.db-wal"):
                if os.path.exists(os.path.join(cdir, f)): shutil.copy(os.path.join(cdir, f), tmp)
            c = sqlite3.connect(os.path.join(tmp, "index.db"))
        objs = {r[1]: (r[0], r[2], r[3]) for r in c.execute(
            "select o.id, o.key, o.size, o.gen from objects o join buckets b on o.bucket = b.id where b.name = ?", (C.BUCKET,))}
        byid = {v[0]: k for k, v in objs.items()}
        # Format 2: 32 block slots per blockmaps row, 5 bytes each (present flag, CRC32C little-endian).
        for obj, chunk, slots in c.execute("select obj, chunk, slots from blockmaps"):
            if obj not in byid: continue
            for k in range(len(slots) // 5):
                if slots[5 * k] == 1:
                    s["blocks"].setdefault(byid[obj], {})[chunk * 32 + k] = int.from_bytes(slots[5 * k + 1:5 * k + 5], "little")
        c.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for key, (oid, size, gen) in objs.items():
        rel = key[len(C.PREFIX):]
        s["objs"][rel] = (oid, size, gen)
        s["gens"][rel] = gen
        blocks = s["blocks"].pop(key, {})
        if rel not in C.MAN: continue
        s["blocks"][rel] = blocks
        if not blocks: continue
        p = os.path.join(cdir, "data", "%d.%d" % (oid, gen))
        try: f = open(p, "rb")
        except OSError:
            s["problems"].append("%d block(s) of %s recorded but data/%d.%d is missing" % (len(blocks), rel, oid, gen)); continue
        with f:
            for idx in sorted(blocks):
                a = idx * M; n = min(M, size - a)
                if n <= 0:
                    s["problems"].append("block %d of %s recorded beyond its size" % (idx, rel)); continue
                f.seek(a)
                if f.read(n) != src_range(rel, a, n):
                    s["problems"].append("WRONG BYTES in recorded block %d of %s" % (idx, rel))
                s["present"] += n
    return s


def cache_monotonic(a, b, what):
    probs, lost = [], 0
    for rel, blocks in a["blocks"].items():
        if blocks and b["gens"].get(rel) != a["gens"].get(rel):
            probs.append("%s: %s's blocks discarded (gen %s -> %s)" % (what, rel, a["gens"].get(rel), b["gens"].get(rel))); continue
        nb = b["blocks"].get(rel, {})
        for idx, crc in blocks.items():
            if nb.get(idx) != crc: lost += 1
    if lost: probs.append("%s: %d block(s) recorded before are gone or changed crc" % (what, lost))
    return probs


def verify_cache(cdir, s):
    """Every object's bytes from data/<id>.<gen>; returns (bytes verified, problems)."""
    probs, n = [], 0
    for rel, (size, sha, _) in C.MAN.items():
        o = s["objs"].get(rel)
        if not o: probs.append("%s missing from the index" % rel); continue
        oid, dsize, gen = o
        if dsize != size: probs.append("%s: index size %d != %d" % (rel, dsize, size)); continue
        if size == 0: continue
        p = os.path.join(cdir, "data", "%d.%d" % (oid, gen))
        if not os.path.exists(p): probs.append("%s: no data file" % rel); continue
        if sha_file(p, size) != sha: probs.append("WRONG BYTES in the cached %s" % rel); continue
        n += size
    return n, probs


def cache_verify_cmd(cdir, logpath):
    try:
        r = subprocess.run([C.SOAK, "cache", "verify", "--cache-dir", cdir, "--json"], capture_output=True, text=True, timeout=C.TIMEOUT)
    except subprocess.TimeoutExpired:
        return ["HANG: soak cache verify"]
    open(logpath, "a").write(r.stdout + r.stderr)
    try:
        j = json.loads(r.stdout.strip().splitlines()[-1])
    except Exception:
        return ["soak cache verify gave no JSON (exit %d): %s" % (r.returncode, (r.stderr or r.stdout)[-120:])]
    probs = []
    if j.get("corruptBlocks") or j.get("missingFiles") or j.get("unrepaired"):
        probs.append("soak cache verify: %s corrupt block(s), %s missing file(s), unrepaired %s" % (
            j.get("corruptBlocks"), j.get("missingFiles"), j.get("unrepaired")))
    if r.returncode != 0: probs.append("soak cache verify exit %d" % r.returncode)
    return probs


def cache_dir_extras(cdir, mount=False):
    ok = {"CACHEDIR.TAG", "index.db", "index.db-wal", "index.db-shm", "data"} | ({"control.sock", "mount.log"} if mount else set())
    odd = sorted(set(os.listdir(cdir)) - ok)
    if os.path.isdir(os.path.join(cdir, "data")):
        odd += ["data/" + f for f in os.listdir(os.path.join(cdir, "data")) if not re.fullmatch(r"\d+\.\d+", f)]
    return ["unexpected entries in the cache dir: %s" % odd[:5]] if odd else []
