"""A reader (a separate process): paced reads through the mount, every chunk compared with the source."""
import json
import os
import random
import time

from . import state as C
from .state import M, src_range


# ---- reader (a separate process): paced reads through the mount, every chunk compared with the source
def reader(args):
    mode, mnt, seed, out = args[0], args[1], int(args[2]), args[3]
    rnd, rate, got, errors, wrong = random.Random(seed), 20e6, 0, [], []
    rels = sorted(r for r in C.MAN if C.MAN[r][0] > 0)
    if mode == "seq":
        work = [(r, o) for r in rels for o in range(0, C.MAN[r][0], M)]
    else:
        work = [(r, rnd.randrange(0, C.MAN[r][0], M)) for r in (rnd.choice(rels) for _ in range(60))]
    t0 = time.monotonic()
    fds = {}
    try:
        for rel, off in work:
            if rel in {e[0] for e in errors}: continue
            try:
                if rel not in fds: fds[rel] = os.open(os.path.join(mnt, rel), os.O_RDONLY)
                b = os.pread(fds[rel], M, off)
            except OSError as e:
                errors.append((rel, str(e)))
                if len(errors) > 3: break
                continue
            want = src_range(rel, off, min(M, C.MAN[rel][0] - off))
            if b != want:
                # A read cut short when the mount dies is legal (the bytes it has are right);
                # anything else is a wrong byte.
                if len(b) < len(want) and b == want[:len(b)]:
                    errors.append((rel, "short read (%d of %d bytes) at %d" % (len(b), len(want), off)))
                else:
                    wrong.append("%s@%d" % (rel, off))
            got += len(b)
            d = t0 + got / rate - time.monotonic()
            if d > 0: time.sleep(d)
    finally:
        for fd in fds.values():
            try: os.close(fd)
            except OSError: pass
        json.dump({"bytes": got, "errors": errors, "wrong": wrong}, open(out, "w"))
