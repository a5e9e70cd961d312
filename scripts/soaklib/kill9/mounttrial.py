"""The mount trials: paced readers through `soak mount`, kill -9 of the daemon or a worker, remount."""
import json
import os
import re
import subprocess
import sys
import time

from . import state as C
from .state import sha_file
from .procs import alive, env_for, kill9, reap_workers, stat_of, workers_of
from .reqlog import cache_present, refetch_check, reqlog_mark, settled_mark, wk_note
from .snapshots import cache_dir_extras, cache_monotonic, cache_verify_cmd, snap_cache
from .trials import new_res


def is_mounted(mnt):
    for l in open("/proc/self/mountinfo"):
        if l.split(" ")[4] == mnt: return True
    return False


def do_mount(cdir, mnt, env, logp, extra=()):
    """soak mount (daemon). Returns (daemon pid or None, problem or None)."""
    try:
        r = subprocess.run([C.SOAK, "mount", C.SRC, mnt, "--cache-dir", cdir, "--endpoint-url", C.ENDPOINT] + list(extra),
                           env=env, capture_output=True, text=True, timeout=C.TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "HANG: soak mount did not return within %.0f s" % C.TIMEOUT
    open(logp, "a").write(r.stdout + r.stderr)
    m = re.search(r"\(pid (\d+)", r.stderr + r.stdout)
    if r.returncode != 0 or not m:
        return None, "soak mount exit %d: %s" % (r.returncode, (r.stderr.strip().splitlines() or [""])[-1][:150])
    if not is_mounted(mnt): return None, "soak mount returned but %s is not mounted" % mnt
    return int(m.group(1)), None


def wait_gone(pid, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if not alive(pid): return True
        time.sleep(0.05)
    return not alive(pid)


def start_readers(mnt, run, k, trng):
    rs = []
    for mode in ("seq", "rand"):
        out = os.path.join(run, "reader-%d-%s.json" % (k, mode))
        p = subprocess.Popen([sys.executable, "-m", "soaklib.kill9", "read", mode, mnt, str(trng.randrange(1 << 30)), out],
                             stdin=subprocess.DEVNULL, stderr=open(os.path.join(run, "reader.err"), "ab"))
        rs.append((p, out))
    return rs


def finish_readers(rs, secs, must_succeed):
    probs, end = [], time.monotonic() + secs
    for p, out in rs:
        try: p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill9(p.pid)
            try: p.wait(timeout=10)
            except subprocess.TimeoutExpired: pass
            probs.append("HANG: a reader through the mount did not return within %.0f s" % secs); continue
        try: r = json.load(open(out))
        except Exception:
            probs.append("reader exit %s without a result" % p.returncode); continue
        if r["wrong"]: probs.append("WRONG BYTES read through the mount: %s" % r["wrong"][:3])
        if must_succeed and r["errors"]: probs.append("reads failed after a worker was killed: %s" % r["errors"][:2])
    return probs


def unmount(mnt, pid, probs):
    if is_mounted(mnt):
        r = subprocess.run(["umount", mnt], capture_output=True, text=True)
        if r.returncode != 0:
            probs.append("umount failed: %s" % r.stderr.strip()[:100])
            subprocess.run(["umount", "-l", mnt], capture_output=True)
    if pid and not wait_gone(pid, 15):
        probs.append("the mount daemon did not exit within 15 s of umount"); kill9(pid)


def trial_mount(i, plan, trng, prefetch):
    res = new_res("mount", i)
    run = os.path.join(C.WORK, "runs", "mount-%02d" % i); box = os.path.join(run, "box"); cdir = os.path.join(box, "cache")
    mnt = os.path.join(run, "mnt")
    os.makedirs(box); os.makedirs(mnt)
    logp = os.path.join(run, "soak.log")
    prev, pid = None, None
    try:
        for k, (target, delay) in enumerate(plan):
            pid, err = do_mount(cdir, mnt, env_for(True), logp, ["--prefetch"] if prefetch else [])
            if err:
                res["problems"].append(("remount after a kill: " if k else "") + err)
                if k == 0 or not is_mounted(mnt): return res
            rs = start_readers(mnt, run, k, trng)
            t0 = time.monotonic()
            time.sleep(max(0.0, t0 + delay - time.monotonic()))
            if target == "coordinator":
                ws, start = workers_of(pid), (stat_of(pid) or (0, 0, 0))[2]
                kill9(pid)
                res["coord"] += 1; res["kills"].append("coord@%.2fs" % (time.monotonic() - t0))
                res["problems"] += reap_workers(ws, pid=pid, start=start)
                res["problems"] += finish_readers(rs, 15, False)
                if not wait_gone(pid, 5): res["problems"].append("the killed mount daemon is still there")
            else:
                ws, end = [], time.monotonic() + 1.5
                while time.monotonic() < end:
                    ws = workers_of(pid)
                    if ws: break
                    time.sleep(0.02)
                wmark = None
                if ws:
                    kill9(trng.choice(ws)[0])
                    res["worker"] += 1; res["kills"].append("worker@%.2fs/%d" % (time.monotonic() - t0, len(ws)))
                    present = cache_present(snap_cache(cdir, live=True))
                    wmark = reqlog_mark()
                else:
                    res["missed"] += 1; res["kills"].append("missed")
                res["problems"] += finish_readers(rs, C.TIMEOUT, True)
                unmount(mnt, pid, res["problems"])
                if wmark is not None:
                    ok, _, pr = refetch_check(wmark, present, None, "mount after the worker kill")
                    res["problems"] += pr
                    res["after_worker_kill"] = res.get("after_worker_kill", True) and ok
                    res["wk"].append(wk_note(wmark, present))
            pid = None
            snap = snap_cache(cdir)
            res["problems"] += ["after the kill: " + p for p in snap["problems"]]
            if prev: res["problems"] += cache_monotonic(prev, snap, "next mount")
            prev = snap
        # remount (on a possibly stale mountpoint), read everything, count fetches
        rlog = os.path.join(run, "remount.log")
        mark, pr = settled_mark()
        res["problems"] += pr
        pid, err = do_mount(cdir, mnt, env_for(False), rlog)
        if err:
            res["problems"].append("remount after the kill: " + err)
            subprocess.run(["umount", "-l", mnt], capture_output=True)
            pid, err = do_mount(cdir, mnt, env_for(False), rlog)
            if err:
                res["problems"].append("remount after umount -l: " + err); return res
            res["note"] = "needed umount -l; "
        for rel, (size, sha, _) in sorted(C.MAN.items()):
            try: ok = sha_file(os.path.join(mnt, rel), size) == sha and os.path.getsize(os.path.join(mnt, rel)) == size
            except OSError as e:
                res["problems"].append("reading %s through the remount: %s" % (rel, e)); continue
            if ok: res["verified"] += size
            else: res["problems"].append("WRONG BYTES through the remount: %s" % rel)
        fetched = None
        try:
            r = subprocess.run([C.SOAK, "status", "--json", "--cache-dir", cdir], capture_output=True, text=True, timeout=30)
            fetched = json.loads(r.stdout)["engine"]["bytes"]
        except Exception as e:
            res["problems"].append("soak status --json failed: %s" % e)
        unmount(mnt, pid, res["problems"]); pid = None
        after = snap_cache(cdir)
        res["problems"] += after["problems"] + cache_monotonic(prev, after, "remount")
        res["problems"] += cache_verify_cmd(cdir, rlog) + cache_dir_extras(cdir, mount=True)
        if os.listdir(box) != ["cache"]: res["problems"].append("files outside the cache dir: %s" % sorted(set(os.listdir(box)) - {"cache"}))
        missing = C.TOTAL - prev["present"]
        ok2, note2, probs2 = refetch_check(mark, cache_present(prev), missing, "remount")
        if fetched is not None:
            res["refetch"] = fetched <= missing
            if not res["refetch"]:
                res["problems"].append("REFETCH: the remount's engine fetched %d bytes, only %d were missing" % (fetched, missing))
        else:
            res["refetch"] = False
        res["refetch"] = res["refetch"] and ok2
        res["problems"] += probs2
        res["note"] += note2 + (" (prefetch)" if prefetch else "")
        return res
    finally:
        if is_mounted(mnt): subprocess.run(["umount", "-l", mnt], capture_output=True)
        if pid: kill9(pid)
