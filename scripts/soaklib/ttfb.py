"""Time to first byte through a mount (python3 -m soaklib.ttfb; scripts/bench-mount).

python3 -m soaklib.ttfb MNT_D SRC_D N SEED OUT [DELAY LOAD_LOG LOAD_CMD...]: N reads of 4096 bytes, each `open` +
os.pread at a random 4 KiB-aligned offset of a random file (names and sizes from the local copy SRC_D, the
same plan for every seed), timed from before open to after pread; every read is compared with the local
copy. With LOAD_CMD: once this script is loaded and its plan made, LOAD_CMD starts (output to LOAD_LOG),
the reads begin DELAY seconds later, and no read starts after LOAD_CMD has ended (a read that started
while it ran counts, however long it takes); then LOAD_CMD is waited for.
Writes "p50_ms p99_ms counted mismatches errors reads_s load_s load_rc slow_n slow_p50_ms" to OUT (slow: reads
over 2 ms, i.e. not served from data already local) and the latencies to OUT.lat."""
import math
import os
import random
import statistics
import subprocess
import sys
import time


def make_plan(names, sizes, n, seed):
    """n (name, 4 KiB-aligned offset) pairs, the same for a seed."""
    rng = random.Random(seed)
    plan = []
    for _ in range(n):
        nm = rng.choice(names)
        plan.append((nm, rng.randrange(max(sizes[nm] // 4096, 1)) * 4096))
    return plan


def percentile(s, q):
    """The q-quantile of the sorted list s (nearest rank), 0 when s is empty."""
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))] if s else 0


def main(argv):
    mnt, src, n, seed, out = argv[0], argv[1], int(argv[2]), int(argv[3]), argv[4]
    delay = float(argv[5]) if len(argv) > 7 else 0
    load_log = argv[6] if len(argv) > 7 else None
    load_cmd = argv[7:]
    names = sorted(os.listdir(src))
    sizes = {nm: os.path.getsize(os.path.join(src, nm)) for nm in names}
    plan = make_plan(names, sizes, n, seed)
    lat, bad, errors, load, load_s, load_rc = [], 0, 0, None, "-", "-"
    try:
        if load_cmd:
            logf = open(load_log, "ab")
            t_load = time.perf_counter()
            load = subprocess.Popen(load_cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
            time.sleep(delay)
        t_start = time.perf_counter()
        for nm, off in plan:
            if load is not None and load.poll() is not None:
                break
            try:
                t0 = time.perf_counter()
                fd = os.open(os.path.join(mnt, nm), os.O_RDONLY)
                b = os.pread(fd, 4096, off)
                t1 = time.perf_counter()
                os.close(fd)
            except OSError as e:
                errors += 1
                print(f"read {nm}@{off}: {e}", file=sys.stderr)
                continue
            lat.append((t1 - t0) * 1000)
            with open(os.path.join(src, nm), "rb") as f:
                f.seek(off)
                if f.read(4096) != b: bad += 1
        total = time.perf_counter() - t_start
        if load is not None:
            load_rc = load.wait()
            load_s = f"{time.perf_counter() - t_load:.3f}"
    finally:
        if load is not None and load.poll() is None:
            load.terminate(); load.wait()
    s = sorted(lat)
    pct = lambda q: percentile(s, q)
    slow = [x for x in s if x > 2]   # reads not served from blocks already landed (a heuristic)
    with open(out, "w") as f:
        f.write(f"{pct(0.5):.3f} {pct(0.99):.3f} {len(s)} {bad} {errors} {total:.3f} {load_s} {load_rc} {len(slow)} "
                f"{statistics.median(slow) if slow else 0:.1f}\n")
    with open(out + ".lat", "w") as f:
        f.write("\n".join(f"{x:.3f}" for x in lat) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
