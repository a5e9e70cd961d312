"""The kill -9 suite's driver: seeded trial plans, the per-trial lines and the summary table."""
import hashlib
import os
import random
import shutil
import subprocess
import sys
import time

from . import state as C
from .state import M, log
from .mounttrial import trial_mount
from .trials import new_res, trial_download, trial_prewarm

# The objects of s3://kill9/data/: (key, size); sub/multi24 is uploaded in 5 MiB parts (scripts/test-kill9).
OBJECTS = [("big30", 30 * M), ("sub/big20", 20 * M + 333), ("big16", 16 * M - 5), ("mid8", 8 * M + 12345),
           ("sub/deep/mid6", 6 * M + 7), ("s1m", M), ("s3m", 3 * M + 1), ("s2500k", 2500000),
           ("s700k", 700001), ("sub/s300k", 300000), ("tiny", 100), ("empty", 0)]
MULTIPART = ("sub/multi24", 24 * M + 4096)


def dataset(src, seed, out=sys.stdout):
    """Writes the seeded random objects under src/tree (and src/mp for the multipart one) and prints
    the manifest: rel, size, sha256, local path."""
    rnd = random.Random(seed)
    rows = [(k, s, os.path.join(src, "tree", k)) for k, s in OBJECTS]
    rows.append((MULTIPART[0], MULTIPART[1], os.path.join(src, "mp", MULTIPART[0].rsplit("/", 1)[-1])))
    for rel, size, path in rows:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        h, left = hashlib.sha256(), size
        with open(path, "wb") as f:
            while left:
                b = rnd.randbytes(min(M, left)); f.write(b); h.update(b); left -= len(b)
        out.write("%s\t%d\t%s\t%s\n" % (rel, size, h.hexdigest(), path))


def make_plans(seed, n_dl, n_pw, n_mt):
    """The seeded trials: (tool, i, kills [(target, delay s)], trial seed, prefetch). Every third trial
    kills twice: the coordinator, then (in the resumed run) a worker or the coordinator again."""
    rng = random.Random(seed)
    plans = []
    for tool, n, lo, hi in (("download", n_dl, 0.3, 3.0), ("prewarm", n_pw, 0.3, 3.0), ("mount", n_mt, 0.05, 2.5)):
        for i in range(n):
            if i % 3 == 2:  # twice: the coordinator, then (in the resumed run) a worker or the coordinator again
                kills = [("coordinator", rng.uniform(lo, hi)), ("worker" if (i // 3) % 2 == 0 else "coordinator", rng.uniform(lo, hi / 2))]
            else:
                kills = [("coordinator" if i % 2 == 0 else "worker", rng.uniform(lo, hi))]
            plans.append((tool, i, kills, rng.randrange(1 << 30), (i // 2) % 2 == 1))
    return plans


def main():
    """The driver: every trial, then the table. Returns 0 (all passed) or 1 (a trial failed)."""
    C.load()
    px = subprocess.Popen([sys.executable, "-m", "soaklib.kill9", "proxy"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          stderr=open(os.path.join(C.WORK, "proxy.err"), "ab"))
    port = px.stdout.readline().strip()
    if not port.isdigit():
        log("test-kill9: the request-logging proxy did not start"); return 2
    C.ENDPOINT = "http://127.0.0.1:%s" % port.decode()
    n_dl, n_pw, n_mt = (int(x) for x in C.E["K9_TRIALS"].split(","))
    if n_mt and not os.path.exists("/dev/fuse"):
        log("test-kill9: no /dev/fuse: the %d mount trials are skipped" % n_mt); n_mt = 0
    plans = make_plans(C.SEED, n_dl, n_pw, n_mt)
    T0 = time.monotonic()
    results = []
    for tool, i, kills, tseed, prefetch in plans:
        t = time.monotonic(); trng = random.Random(tseed)
        try:
            if tool == "download": r = trial_download(i, kills, trng)
            elif tool == "prewarm": r = trial_prewarm(i, kills, trng)
            else: r = trial_mount(i, kills, trng, prefetch)
        except Exception as e:
            import traceback; traceback.print_exc()
            r = new_res(tool, i); r["problems"].append("driver error: %r" % e)
        r["secs"] = time.monotonic() - t
        results.append(r)
        log("  %-8s #%02d %-28s %-4s %10d B  %-36s %5.1f s%s" % (
            tool, i, " ".join(r["kills"]), "PASS" if not r["problems"] else "FAIL", r["verified"],
            r["note"] + ("; wk " + ",".join(r["wk"]) if r["wk"] else ""), r["secs"],
            ("\n      " + "\n      ".join(r["problems"][:6])) if r["problems"] else ""))
        if not r["problems"] and os.environ.get("KILL9_KEEP") != "1":
            shutil.rmtree(os.path.join(C.WORK, "runs", "%s-%02d" % (tool, i)), ignore_errors=True)
    secs = time.monotonic() - T0
    log("  workers outlived a killed coordinator by at most %.2f s" % C.WORKER_LINGER)
    log("  (note: rerun/remount GET = MB it asked S3 for / MB that were missing; wk A+B = after a worker kill, A MB\n"
        "   were complete, and the rest of that run asked for B MB, none of it overlapping A)")
    print("%-9s %6s %12s %12s %6s %14s %14s %6s" % ("tool", "trials", "coord kills", "worker kills", "missed", "bytes verified", "refetch ok", "failed"))
    for tool in ("download", "prewarm", "mount"):
        rs = [r for r in results if r["tool"] == tool]
        if not rs: continue
        print("%-9s %6d %12d %12d %6d %14d %14s %6d" % (tool, len(rs), sum(r["coord"] for r in rs), sum(r["worker"] for r in rs),
              sum(r["missed"] for r in rs), sum(r["verified"] for r in rs),
              "%d/%d" % (sum(1 for r in rs if r["refetch"] and r.get("after_worker_kill", True)), len(rs)),
              sum(1 for r in rs if r["problems"])))
    nf = sum(1 for r in results if r["problems"])
    print("%d trials, %d failed, %d bytes verified, %.0f s" % (len(results), nf, sum(r["verified"] for r in results), secs))
    px.kill(); px.wait()
    return 1 if nf else 0
