"""One download / prewarm row of the fault suite: every byte against the manifest, nothing outside
DEST / the cache dir, and the exit code and failure lines the row's mode expects. Prints one line:
result TAB faults injected TAB bytes verified TAB note."""
import hashlib
import json
import os
import re
import sqlite3
from urllib.parse import unquote

from ..report import read_lines
from .stall import stall_verdict

HOSTILE = ["../x", "a/../../b", "/abs", "c/" + "L" * 300 + "/f",
           "/".join(["p%03d" % i + "q" * 246 for i in range(18)]),
           "nl\nname", "tab\tname", "./dot", "d/./e", "e/..", "..", ".", "f//g", ".soak-partial/p"]
CTL = ["ctl\x01name"]

def sha_file(p, size):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        left = size
        while left > 0:
            b = f.read(min(1 << 20, left))
            if not b: break
            h.update(b); left -= len(b)
    return h.hexdigest(), size - left

def failures(err_text):
    """(count announced in the summary, [failure lines]) from soak's stderr."""
    m = re.search(r"; (\d+) failed:\n", err_text)
    if not m: return 0, []
    return int(m.group(1)), err_text[m.end():].split("\n")

def main(argv):
    mode, tool, fault, rc, out_dir, errf, statsf, proxy_err, manifest, bucket, prefix = argv[:11]
    rc = int(rc)
    rows = [l.rstrip("\n").split("\t") for l in read_lines(manifest)]
    expect = {r[0]: (int(r[1]), r[2]) for r in rows}
    err = "".join(read_lines(errf))
    try:
        with open(statsf) as f: stats = json.load(f)
    except Exception: stats = {"injected": {}, "stall": {}}
    injected = sum(stats.get("injected", {}).values())
    notes, fail = [], False
    def bad(msg):
        nonlocal fail
        fail = True; notes.append(msg)

    # Keys the proxy answered 412 for (etag-change).
    changed = set()
    for l in read_lines(proxy_err):
        m = re.match(r"faultproxy: #\d+ etag-change GET (\S+)", l)
        if m:
            path = unquote(m.group(1).split("?")[0])
            k = path.split("/", 2)[2]
            if k.startswith(prefix): changed.add(k[len(prefix):])

    nfail, flines = failures(err)
    box = os.path.dirname(out_dir)
    # Strays: the box holds only DEST / the cache dir; nothing at the hostile absolute paths.
    extra = sorted(set(os.listdir(box)) - {os.path.basename(out_dir)})
    if extra: bad("files outside %s: %s" % (os.path.basename(out_dir), extra[:5]))
    for p in ("/abs", "/x", "/b"):
        if os.path.lexists(p) and os.path.getmtime(p) > os.path.getmtime(manifest):
            bad("stray %s created" % p)

    verified, wrong, missing = 0, [], []
    if tool.startswith("download"):
        got = set()
        for d, ds, fs in os.walk(out_dir):
            rel_d = os.path.relpath(d, out_dir)
            if rel_d == ".soak-partial" or rel_d.startswith(".soak-partial/"):
                continue
            for f in fs:
                rel = os.path.normpath(os.path.join(rel_d, f))
                got.add(rel)
        if not os.path.isdir(out_dir):
            notes.append("no DEST")  # every object is then missing: a FAIL row, not a crash
        elif ".soak-partial" in os.listdir(out_dir) and os.listdir(os.path.join(out_dir, ".soak-partial")) and mode == "ok":
            notes.append("leftover .soak-partial after success")
        unexpected = sorted(got - set(expect))
        if unexpected: bad("unexpected files in DEST: %r" % unexpected[:5])
        for rel, (size, sha) in expect.items():
            p = os.path.join(out_dir, rel)
            if not os.path.isfile(p):
                missing.append(rel); continue
            if os.path.getsize(p) != size:
                wrong.append(rel); continue
            h, _ = sha_file(p, size)
            if h == sha: verified += size
            else: wrong.append(rel)
    else:
        files = set(os.listdir(out_dir)) if os.path.isdir(out_dir) else set()
        odd = sorted(f for f in files if f not in ("data", "CACHEDIR.TAG") and not f.startswith("index.db"))
        if odd: bad("unexpected entries in the cache dir: %r" % odd[:5])
        if os.path.isdir(os.path.join(out_dir, "data")):
            oddd = [f for f in os.listdir(os.path.join(out_dir, "data")) if not re.fullmatch(r"\d+\.\d+", f)]
            if oddd: bad("unexpected files in cache data/: %r" % oddd[:5])
        rowsdb = {}
        if os.path.exists(os.path.join(out_dir, "index.db")):
            c = sqlite3.connect("file:%s?mode=ro" % os.path.join(out_dir, "index.db"), uri=True)
            for oid, key, size, gen, cached in c.execute(
                    "select o.id, o.key, o.size, o.gen, o.cached from objects o join buckets b on o.bucket = b.id "
                    "where b.name = ?", (bucket,)):
                rowsdb[key] = (oid, size, gen, cached)
            c.close()
        for rel, (size, sha) in expect.items():
            r = rowsdb.get(prefix + rel)
            if r is None:
                missing.append(rel); continue
            oid, dsize, gen, cached = r
            if dsize != size: wrong.append(rel); continue
            if size == 0:
                verified += 0; continue
            p = os.path.join(out_dir, "data", "%d.%d" % (oid, gen))
            if not os.path.exists(p):
                missing.append(rel); continue
            h, n = sha_file(p, size)
            if h == sha and n == size: verified += size
            else: wrong.append(rel)

    # Wrong bytes are never acceptable.
    if wrong: bad("WRONG BYTES in %d object(s): %s" % (len(wrong), ", ".join(wrong[:4])))
    if rc == 124 or rc == 137: bad("timed out (hang?)")
    elif rc >= 128: bad("killed by signal %d" % (rc - 128))

    hostile_names = HOSTILE + (CTL if "ctl" in fault else [])
    if mode == "ok":
        if rc != 0 and rc < 124: bad("exit %d: %s" % (rc, last_line(err)))
        if missing: bad("missing %d object(s): %s" % (len(missing), ", ".join(missing[:4])))
    elif mode == "changed":
        # A stray 412 (the object never changed): soak asks HEAD, sees the same ETag, retries.
        if not changed: bad("the proxy answered no 412: nothing was tested")
        if rc != 0 and rc < 124: bad("exit %d: %s" % (rc, last_line(err)))
        if missing: bad("missing %d object(s): %s" % (len(missing), ", ".join(missing[:4])))
        notes.append("412 for %d key(s) -> exit %d, %d failure line(s)" % (len(changed), rc, nfail))
    elif mode == "hostile":
        if missing: bad("real objects missing: %s" % ", ".join(missing[:4]))
        lines = [l for l in flines if l.startswith("  ")]
        stray = [l for l in flines if l and not l.startswith("  ") and not l.startswith("soak:")]
        if tool.startswith("download"):
            if rc != 3: bad("exit %d (expected 3: hostile keys reported as failures)" % rc)
            if nfail != len(hostile_names): bad("%d failures, expected %d hostile keys" % (nfail, len(hostile_names)))
            if stray: bad("failure list broken over lines by raw control chars in keys: %r" % stray[:2])
            longest = max((len(l) for l in lines), default=0)
            if longest > 1000: notes.append("a failure line is %d chars (key printed unabridged)" % longest)
            if stats.get("hostile_served", {}).get("GET", 0):
                notes.append("fetched %d hostile objects" % stats["hostile_served"]["GET"])
        else:
            if rc not in (0, 3): bad("exit %d" % rc)
            served = stats.get("hostile_served", {}).get("GET", 0)
            notes.append("exit %d; %d hostile keys fetched into the cache, %d reported failed" % (rc, served, nfail))
    elif mode == "ctl":
        if rc == 0: bad("exit 0 with a key holding U+0001 (skipped silently?)")
        elif nfail == 1 and not missing:
            notes.append("the U+0001 key alone was skipped")
        elif nfail == 0 and "error:" in last_line(err):
            notes.append("whole listing refused: " + last_line(err)[:90])
        else:
            bad("exit %d, %d failures, %d missing: %s" % (rc, nfail, len(missing), last_line(err)[:80]))

    if fault in ("stall", "mixed"):
        problems, note = stall_verdict(stats, float(os.environ["STALL_ABORT"]))
        for p in problems: bad(p)
        if note: notes.append(note)

    # Cache verify result (prewarm): a JSON line passed via env.
    cv = os.environ.get("CACHE_VERIFY")
    if cv is not None:
        try:
            j = json.loads(cv.strip().splitlines()[-1])
            if j.get("corruptBlocks") or j.get("missingFiles") or j.get("unrepaired"):
                bad("cache verify: %d corrupt block(s), %d missing file(s)" % (j.get("corruptBlocks", 0), j.get("missingFiles", 0)))
            if wrong and not j.get("corruptBlocks"):
                notes.append("cache verify saw no corruption")
        except Exception:
            bad("cache verify gave no JSON: %r" % cv[-100:])
        if os.environ.get("CACHE_VERIFY_RC", "0") != "0": bad("cache verify exit %s" % os.environ["CACHE_VERIFY_RC"])

    print("%s\t%d\t%d\t%s" % ("FAIL" if fail else "PASS", injected, verified, "; ".join(notes)))
    return 0

def last_line(s):
    ls = [l for l in s.strip().split("\n") if l.strip()]
    return ls[-1] if ls else ""
