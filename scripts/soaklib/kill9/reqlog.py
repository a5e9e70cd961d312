"""The request log: a pass-through proxy in front of S3 logs every request's method, target and
Range, so what a rerun fetched is measured outside soak and compared with what was already there."""
import os
import re
import socket
import threading
import time
import urllib.parse

from . import state as C
from .state import M


# ---- the request log: a pass-through proxy in front of S3 logs every request's method, target and
# Range, so what a rerun fetched is measured outside soak and compared with what was already there.
def proxy(args):
    up = urllib.parse.urlsplit(C.UPSTREAM)
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0)); ls.listen(256)
    logf, lock, parent = open(C.REQLOG, "a", buffering=1), threading.Lock(), os.getppid()
    def close(st, *ss):
        with lock: st["closed"] = True  # no line is logged for this connection after this
        for x in ss:
            try: x.shutdown(socket.SHUT_RDWR)
            except OSError: pass
            x.close()
    def c2u(c, u, st):
        buf = b""
        while True:
            try: d = c.recv(1 << 16)
            except OSError: d = b""
            if not d: break
            buf += d
            while b"\r\n\r\n" in buf:  # soak sends no request bodies
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                rng = next((l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("range:")), "")
                parts = lines[0].split(" ")
                with lock:
                    if st["closed"]: return
                    logf.write("%s\t%s\t%s\n" % (parts[0], parts[1] if len(parts) > 1 else "", rng))
            buf = buf[-1 << 16:]
            try: u.sendall(d)
            except OSError: break
        close(st, c, u)
    def u2c(u, c, st):
        b = bytearray(1 << 20); mv = memoryview(b)
        while True:
            try:
                n = u.recv_into(b)
                if not n: break
                c.sendall(mv[:n])
            except OSError: break
        close(st, c, u)
    def watchdog():
        while os.getppid() == parent: time.sleep(0.5)
        os._exit(0)
    threading.Thread(target=watchdog, daemon=True).start()
    print(ls.getsockname()[1], flush=True)
    while True:
        c, _ = ls.accept()
        try: u = socket.create_connection((up.hostname, up.port))
        except OSError:
            c.close(); continue
        for x in (c, u): x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st = {"closed": False}
        threading.Thread(target=c2u, args=(c, u, st), daemon=True).start()
        threading.Thread(target=u2c, args=(u, c, st), daemon=True).start()


def reqlog_mark():
    return os.path.getsize(C.REQLOG) if os.path.exists(C.REQLOG) else 0


# TCP states (include/net/tcp_states.h) in which the proxy has not closed a client connection yet:
# ESTABLISHED, SYN_RECV, CLOSE_WAIT (the client is gone, the proxy still reads what it sent).
OPEN_STATES = {"01", "03", "08"}


def open_conns(port, tables=("/proc/net/tcp", "/proc/net/tcp6")):
    """How many client connections to the proxy's port it has not closed yet (accepted or not)."""
    n = 0
    for t in tables:
        try: lines = open(t).read().splitlines()[1:]
        except OSError: continue
        for l in lines:
            f = l.split()
            if len(f) > 3 and int(f[1].rsplit(":", 1)[1], 16) == port and f[3] in OPEN_STATES: n += 1
    return n


def settled_mark(timeout=10.0):
    """The mark for the next run, once every request of the runs before it is in the log: the
    processes of those runs are gone (reap_workers) but what they sent may still wait in the
    proxy's sockets; the proxy logs nothing for a connection after closing it, and it closes every
    connection whose client died, so no open connection means no late line. Returns (mark, problems)."""
    port, t0 = int(urllib.parse.urlsplit(C.ENDPOINT).port), time.monotonic()
    while open_conns(port):
        if time.monotonic() - t0 > timeout:
            return reqlog_mark(), ["the request-logging proxy still had %d open connection(s) %.0f s after the run ended" % (open_conns(port), timeout)]
        time.sleep(0.02)
    return reqlog_mark(), []


def object_gets(mark):
    """(rel, start, end) of every object GET logged since mark (end exclusive, clipped to the size)."""
    out = []
    with open(C.REQLOG, encoding="latin-1") as f:
        f.seek(mark)
        for line in f:
            meth, target, rng = (line.rstrip("\n").split("\t") + ["", ""])[:3]
            if meth != "GET": continue
            path = urllib.parse.unquote(target.split("?", 1)[0])
            pre = "/%s/%s" % (C.BUCKET, C.PREFIX)
            if not path.startswith(pre) or path[len(pre):] not in C.MAN: continue
            rel = path[len(pre):]; size = C.MAN[rel][0]; a, b = 0, size
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m and m.group(1): a, b = int(m.group(1)), (int(m.group(2)) + 1 if m.group(2) else size)
            elif m and m.group(2): a = max(0, size - int(m.group(2)))
            out.append((rel, min(a, size), min(b, size)))
    return out


def refetch_check(mark, present, missing, what):
    """present: rel -> [(start, end)] complete before the rerun; missing: bytes it may fetch at most
    (None: unchecked). Returns (ok, note, problems)."""
    gets = object_gets(mark)
    req = sum(b - a for _, a, b in gets)
    again, where = 0, []
    for rel, a, b in gets:
        for x, y in present.get(rel, []):
            o = min(b, y) - max(a, x)
            if o > 0:
                again += o; where.append("%s[%d,%d)" % (rel, max(a, x), min(b, y)))
    probs = []
    if again:
        probs.append("REFETCH: the %s asked S3 again for %d bytes that were complete before it: %s" % (what, again, ", ".join(where[:4])))
    if missing is not None and req > missing:
        probs.append("REFETCH: the %s asked S3 for %d bytes (%d GETs), only %d were missing" % (what, req, len(gets), missing))
    return not probs, "%s GET %.1f/%.1f MB" % (what, req / 1e6, (missing or 0) / 1e6), probs


def wk_note(mark, present):
    """After a worker kill: MB complete right after it / MB the rest of the run asked for."""
    return "%.0f+%.0f" % (sum(y - x for v in present.values() for x, y in v) / 1e6,
                          sum(b - a for _, a, b in object_gets(mark)) / 1e6)


def cache_present(snap):
    return {rel: [(i * M, min(C.MAN[rel][0], (i + 1) * M)) for i in bl] for rel, bl in snap["blocks"].items() if rel in C.MAN}


def download_present(snap, partsize):
    p = {rel: [(0, C.MAN[rel][0])] for rel in snap["files"]}
    for rel, (done, ps) in snap["parts"].items():
        p.setdefault(rel, []).extend((i * ps, min(C.MAN[rel][0], (i + 1) * ps)) for i in done)
    return p
