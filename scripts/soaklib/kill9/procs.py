"""Processes of a kill -9 trial: soak's coordinator and its `soak __worker` children, read from /proc."""
import os
import subprocess
import time

from ..env import clean_env
from . import state as C


# ---- processes
def stat_of(pid):
    try:
        s = open("/proc/%d/stat" % pid).read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    return f[0], int(f[1]), int(f[19])  # state, ppid, starttime


def alive(pid, start=None):
    s = stat_of(pid)
    return bool(s) and s[0] not in "ZX" and (start is None or s[2] == start)


def workers_of(pid):
    """Live worker processes (children of pid running `soak __worker`) as (pid, starttime)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit(): continue
        s = stat_of(int(d))
        if not s or s[1] != pid or s[0] in "ZX": continue
        try:
            if b"__worker" in open("/proc/%s/cmdline" % d, "rb").read(): out.append((int(d), s[2]))
        except OSError:
            pass
    return sorted(out)


def kill9(pid):
    try: os.kill(pid, 9)
    except ProcessLookupError: pass


def exe_of(pid):
    """The executable's path (a binary rebuilt since the process started reads as the new one)."""
    e = os.readlink("/proc/%d/exe" % pid)
    return e[:-len(" (deleted)")] if e.endswith(" (deleted)") else e


def strays(pid, start):
    """`soak __worker` processes of C.SOAK started since start (the coordinator pid's starttime)
    whose parent is pid or no longer a soak process: the workers of a killed coordinator, including
    one it started after workers_of() looked and orphans already handed to init or a subreaper."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit(): continue
        s = stat_of(int(d))
        if not s or s[0] in "ZX" or s[2] < start: continue
        try:
            exe = exe_of(int(d))
            with open("/proc/%s/cmdline" % d, "rb") as f: cmd = f.read()
        except OSError:
            continue
        if exe != C.SOAK or b"__worker" not in cmd: continue
        try: parent_soak = s[1] != pid and exe_of(s[1]) == C.SOAK
        except OSError: parent_soak = False
        if not parent_soak: out.append((int(d), s[2]))
    return sorted(out)


def reap_workers(ws, grace=5.0, pid=None, start=None):
    """After the coordinator died: its workers must follow within `grace` s. Returns problems.
    With pid and start (the coordinator's), also waits for workers that ws missed (strays())."""
    t0 = time.monotonic()
    def left():
        ls = {p for p, s in ws if alive(p, s)}
        if pid is not None: ls |= {p for p, s in strays(pid, start)}
        return sorted(ls)
    while time.monotonic() - t0 < grace:
        if not left():
            C.WORKER_LINGER = max(C.WORKER_LINGER, time.monotonic() - t0)
            return []
        time.sleep(0.02)
    ls = left()
    for p in ls: kill9(p)
    return ["%d worker(s) still alive %.0f s after the coordinator was killed (pids %s)" % (len(ls), grace, ls)] if ls else []


def env_for(throttled):
    """soak's environment for a trial: clean (loopback only, no instance metadata, no host
    credential sources or proxies; soaklib.env) with the trial's knobs."""
    e = clean_env(C.E, drop_knobs=True)
    e.update(MIN_PROCESSES="2", MAX_PROCESSES="4", MAX_RETRIES="5", RETRY_DELAY="0.2")
    if throttled: e["MAX_SPEED"] = C.SPEED
    return e


def run_bounded(cmd, env, logpath, timeout=None):
    """Runs to the end; on timeout kills it and its workers. Returns (rc or None on hang, seconds)."""
    timeout = C.TIMEOUT if timeout is None else timeout
    t0 = time.monotonic()
    with open(logpath, "ab") as lf:
        p = subprocess.Popen(cmd, env=env, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL)
        try:
            return p.wait(timeout=timeout), time.monotonic() - t0
        except subprocess.TimeoutExpired:
            ws = workers_of(p.pid); kill9(p.pid); p.wait()
            for w, _ in ws: kill9(w)
            return None, time.monotonic() - t0


def last_line(path):
    try: ls = [l for l in open(path, errors="replace").read().splitlines() if l.strip()]
    except OSError: return ""
    return ls[-1][:160] if ls else ""
