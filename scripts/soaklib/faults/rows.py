"""Which rows the fault suite runs, and its table.

A row is (kind, fault, tool, mode, rate, env): kind "run" (soak download / prewarm through the
proxy) or "mount"; mode is what the check expects (ok, changed, hostile, ctl, see check.py)."""
from dataclasses import dataclass

FAULT_TYPES = ("500", "503slowdown", "reset-before", "reset-mid", "truncate", "stall", "slow",
               "bad-content-range", "etag-change", "hostile-keys", "hostile-ctl", "mixed")
# What "mixed" injects at once: every transport fault (the mount's mix leaves out stall: a stalled
# read is checked in its own mount row).
MIXED = "500,503slowdown,reset-before,reset-mid,truncate,stall,slow,bad-content-range"
MIXED_MOUNT = "500,503slowdown,reset-before,reset-mid,truncate,slow,bad-content-range"
BCR_RATE = 0.5  # bad-content-range: high enough that a multi-range object's part is hit too
# In quick mode these faults run through download only (the others through download and prewarm).
QUICK_DOWNLOAD_ONLY = ("503slowdown", "reset-before", "truncate", "stall", "slow")
# Mount rows in quick mode.
QUICK_MOUNT = ("reset-mid", "bad-content-range", "etag-change", "hostile-keys", "mixed")


@dataclass(frozen=True)
class Row:
    kind: str
    fault: str
    tool: str
    mode: str
    rate: str
    env: str = ""  # extra VAR=value for soak, space-separated

    def tsv(self):
        """kind, fault, tool, mode, rate, the proxy's --faults, env (what scripts/test-faults reads)."""
        return "\t".join((self.kind, self.fault, self.tool, self.mode, self.rate, proxy_faults(self.fault, self.kind), self.env))


def fmt_rate(x):
    """A rate as awk prints it (%.6g), so 0.3 * 1.5 is 0.45."""
    return "%.6g" % x


def proxy_faults(fault, kind="run"):
    if fault == "mixed":
        return MIXED_MOUNT if kind == "mount" else MIXED
    return fault


def plan(quick, rate, selected=(), fuse=True, bcr_rate=BCR_RATE):
    """The rows in the order they run."""
    sel = set(selected)
    want = (lambda f: True) if not sel else (lambda f: f in sel)
    r = float(rate)
    rates = {"stall": fmt_rate(r / 2), "bad-content-range": fmt_rate(float(bcr_rate)),
             "mixed": fmt_rate(1 if r * 1.5 > 1 else r * 1.5)}
    modes = {"etag-change": "changed", "hostile-keys": "hostile", "hostile-ctl": "ctl"}
    rows = []
    for f in FAULT_TYPES:
        if not want(f):
            continue
        if f == "hostile-ctl":
            tools = ["download"]
        elif quick and f in QUICK_DOWNLOAD_ONLY:
            tools = ["download"]
        else:
            tools = ["download", "prewarm"]
        # A listing that cannot be parsed is retried like any failure: keep its retries few here.
        env = "MAX_RETRIES=3" if f == "hostile-ctl" else ""
        for t in tools:
            rows.append(Row("run", f, t, modes.get(f, "ok"), rates.get(f, fmt_rate(r)), env))
    if fuse:
        for f in FAULT_TYPES:
            if f == "hostile-ctl" or not want(f) or (quick and f not in QUICK_MOUNT):
                continue
            rows.append(Row("mount", f, "mount", modes.get(f, "ok"), rates.get(f, fmt_rate(r))))
    return rows


def read_results(path):
    """The suite's results.tsv: fault, tool, injected, bytes verified, result, seconds, note."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 6:
                out.append((p + [""])[:7])
    return out


def table(results, total_bytes, objects, seconds):
    """The suite's closing table as text (unchanged from the bash version)."""
    lines = ["", "%-18s | %-16s | %7s | %14s | %-6s | %7s | %s" % (
        "fault type", "tool", "injected", "bytes verified", "result", "seconds", "note"),
        "-------------------+------------------+---------+----------------+--------+---------+------"]
    for f, t, i, b, r, s, n in results:
        lines.append("%-18s | %-16s | %7s | %14s | %-6s | %7s | %s" % (f, t, i, b, r, s, n))
    lines += ["", "%d rows, %d FAIL; dataset %s bytes in %d objects; total %d s" % (
        len(results), sum(1 for x in results if x[4] == "FAIL"), total_bytes, objects, seconds)]
    return "\n".join(lines)
