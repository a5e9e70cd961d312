"""The download and prewarm trials: kill -9 at a seeded moment, snapshot, rerun, verify, count refetches."""
import os
import re
import subprocess
import time

from . import state as C
from .state import sha_file
from .procs import env_for, kill9, last_line, reap_workers, run_bounded, stat_of, workers_of
from .reqlog import cache_present, download_present, refetch_check, reqlog_mark, settled_mark, wk_note
from .snapshots import cache_dir_extras, cache_monotonic, cache_verify_cmd, download_monotonic, snap_cache, snap_download, verify_cache


# ---- trials
def new_res(tool, i):
    return {"tool": tool, "i": i, "coord": 0, "worker": 0, "missed": 0, "kills": [], "verified": 0,
            "refetch": None, "problems": [], "note": "", "wk": []}


def killed_run(cmd, env, logpath, target, delay, trng, res, live_present):
    """Starts cmd, kill -9s the coordinator or a worker `delay` s later. Updates res; returns problems.
    After a worker kill the run goes on: what was complete right after the kill (live_present()) must
    not be asked for again by the rest of the run."""
    probs = []
    with open(logpath, "ab") as lf:
        p = subprocess.Popen(cmd, env=env, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        if target == "coordinator":
            if p.poll() is None:
                ws, start = workers_of(p.pid), (stat_of(p.pid) or (0, 0, 0))[2]
                kill9(p.pid); p.wait()
                res["coord"] += 1; res["kills"].append("coord@%.2fs" % (time.monotonic() - t0))
                probs += reap_workers(ws, pid=p.pid, start=start)
            else:
                res["missed"] += 1; res["kills"].append("missed")
        else:
            ws, end = [], time.monotonic() + 1.5
            while p.poll() is None and time.monotonic() < end:
                ws = workers_of(p.pid)
                if ws: break
                time.sleep(0.02)
            mark = None
            if ws and p.poll() is None:
                w = trng.choice(ws)[0]; kill9(w)
                res["worker"] += 1; res["kills"].append("worker@%.2fs/%d" % (time.monotonic() - t0, len(ws)))
                present = live_present()  # then the mark: a GET logged after it was sent after the snapshot
                mark = reqlog_mark()
            else:
                res["missed"] += 1; res["kills"].append("missed")
        try:
            rc = p.wait(timeout=C.TIMEOUT)
        except subprocess.TimeoutExpired:
            ws = workers_of(p.pid); kill9(p.pid); p.wait()
            for w, _ in ws: kill9(w)
            return probs + ["HANG: the run did not end within %.0f s after a worker was killed" % C.TIMEOUT]
    if target != "coordinator" and rc != 0:
        probs.append("the run exited %d after a worker was killed: %s" % (rc, last_line(logpath)))
    if target != "coordinator" and mark is not None:
        ok, note, pr = refetch_check(mark, present, None, "run after the worker kill")
        probs += pr
        res["after_worker_kill"] = res.get("after_worker_kill", True) and ok
        res["wk"].append(wk_note(mark, present))
    return probs


def trial_download(i, plan, trng):
    res = new_res("download", i)
    run = os.path.join(C.WORK, "runs", "download-%02d" % i); box = os.path.join(run, "box"); dest = os.path.join(box, "dest")
    os.makedirs(box)
    logp = os.path.join(run, "soak.log")
    cmd = [C.SOAK, "download", C.SRC, dest, "--endpoint-url", C.ENDPOINT]
    prev = None
    for target, delay in plan:
        res["problems"] += killed_run(cmd, env_for(True), logp, target, delay, trng, res,
                                      lambda: download_present(snap_download(dest), None) if os.path.isdir(dest) else {})
        snap = snap_download(dest) if os.path.isdir(dest) else {"files": {}, "parts": {}, "complete": 0, "durable": 0, "problems": []}
        res["problems"] += ["after the kill: " + p for p in snap["problems"]]
        if prev: res["problems"] += download_monotonic(prev, snap)
        prev = snap
    rlog = os.path.join(run, "rerun.log")
    mark, pr = settled_mark()
    res["problems"] += pr
    rc, secs = run_bounded(cmd, env_for(False), rlog)
    if rc is None:
        res["problems"].append("HANG: the rerun did not finish within %.0f s" % C.TIMEOUT); return res
    if rc != 0: res["problems"].append("rerun exit %d: %s" % (rc, last_line(rlog)))
    ok2, note2, probs2 = refetch_check(mark, download_present(prev, None), C.TOTAL - prev["complete"] - prev["durable"], "rerun")
    # every byte
    for rel, (size, sha, _) in C.MAN.items():
        p = os.path.join(dest, rel)
        if not os.path.isfile(p): res["problems"].append("missing after the rerun: %s" % rel)
        elif os.path.getsize(p) != size or sha_file(p, size) != sha: res["problems"].append("WRONG BYTES after the rerun: %s" % rel)
        else: res["verified"] += size
    after = snap_download(dest)
    res["problems"] += after["problems"] + download_monotonic(prev, after)
    pdir = os.path.join(dest, ".soak-partial")
    if os.path.isdir(pdir) and os.listdir(pdir): res["problems"].append("leftovers in .soak-partial: %s" % os.listdir(pdir)[:3])
    if os.listdir(box) != ["dest"]: res["problems"].append("files outside DEST: %s" % sorted(set(os.listdir(box)) - {"dest"}))
    # the refetch check
    out = open(rlog, errors="replace").read()
    m = re.search(r"(\d+) objects selected of \d+ listed; (\d+) downloaded, (\d+) already up to date; ([\d.]+) MB fetched", out)
    missing = C.TOTAL - prev["complete"] - prev["durable"]
    if not m:
        res["problems"].append("no summary line in the rerun's output"); res["refetch"] = False
    else:
        fetched = float(m.group(4)) * 1e6
        ok = fetched <= missing + C.ROUND
        if not ok: res["problems"].append("REFETCH: the rerun fetched %.1f MB, only %.1f MB were missing (%d complete files, %.1f MB in done parts)"
                                          % (fetched / 1e6, missing / 1e6, len(prev["files"]), prev["durable"] / 1e6))
        if int(m.group(3)) != len(prev["files"]):
            ok = False
            res["problems"].append("REFETCH: %d file(s) were complete before the rerun but it reports %s already up to date" % (len(prev["files"]), m.group(3)))
        res["refetch"] = ok
    res["refetch"] = bool(res["refetch"]) and ok2
    res["problems"] += probs2
    res["note"] = note2
    return res


def trial_prewarm(i, plan, trng):
    res = new_res("prewarm", i)
    run = os.path.join(C.WORK, "runs", "prewarm-%02d" % i); box = os.path.join(run, "box"); cdir = os.path.join(box, "cache")
    os.makedirs(box)
    logp = os.path.join(run, "soak.log")
    cmd = [C.SOAK, "prewarm", C.SRC, "--cache-dir", cdir, "--endpoint-url", C.ENDPOINT]
    prev = None
    for target, delay in plan:
        res["problems"] += killed_run(cmd, env_for(True), logp, target, delay, trng, res,
                                      lambda: cache_present(snap_cache(cdir, live=True)))
        snap = snap_cache(cdir)
        res["problems"] += ["after the kill: " + p for p in snap["problems"]]
        if prev: res["problems"] += cache_monotonic(prev, snap, "next run")
        prev = snap
    rlog = os.path.join(run, "rerun.log")
    mark, pr = settled_mark()
    res["problems"] += pr
    rc, secs = run_bounded(cmd, env_for(False), rlog)
    if rc is None:
        res["problems"].append("HANG: the rerun did not finish within %.0f s" % C.TIMEOUT); return res
    if rc != 0: res["problems"].append("rerun exit %d: %s" % (rc, last_line(rlog)))
    ok2, note2, probs2 = refetch_check(mark, cache_present(prev), C.TOTAL - prev["present"], "rerun")
    after = snap_cache(cdir)
    res["problems"] += after["problems"] + cache_monotonic(prev, after, "rerun")
    n, probs = verify_cache(cdir, after)
    res["verified"] += n; res["problems"] += probs
    res["problems"] += cache_verify_cmd(cdir, rlog) + cache_dir_extras(cdir)
    if os.listdir(box) != ["cache"]: res["problems"].append("files outside the cache dir: %s" % sorted(set(os.listdir(box)) - {"cache"}))
    out = open(rlog, errors="replace").read()
    m = re.search(r"; (\d+) fetched, (\d+) already cached; ([\d.]+) MB fetched", out)
    missing = C.TOTAL - prev["present"]
    if not m:
        res["problems"].append("no summary line in the rerun's output"); res["refetch"] = False
    else:
        fetched = float(m.group(3)) * 1e6
        res["refetch"] = fetched <= missing + C.ROUND
        if not res["refetch"]:
            res["problems"].append("REFETCH: the rerun fetched %.1f MB, only %.1f MB were missing (%d blocks recorded)"
                                   % (fetched / 1e6, missing / 1e6, sum(len(b) for b in prev["blocks"].values())))
    res["refetch"] = bool(res["refetch"]) and ok2
    res["problems"] += probs2
    res["note"] = note2
    return res
