"""Results as JSON, the printed ratio table, the A/B table and PASS/FAIL targets."""
import json
import os
import platform
import time

from .stats import Spread, fmt_ratio, same_within_spread

AB_SEP = "."  # tool "soak.A" is tool "soak" run with binary A (BENCH_SOAK_A); see ab_pairs


class Targets:
    """PASS/FAIL/SKIP lines; ok None means not measured (SKIP)."""

    def __init__(self, out=print):
        self.items = []
        self.out = out

    def check(self, name, ok):
        self.items.append((name, ok))
        self.out(f"{'SKIP' if ok is None else 'PASS' if ok else 'FAIL'}  {name}")
        return ok

    def failed(self):
        return any(ok is False for _, ok in self.items)

    def as_list(self):
        return [{"name": n, "ok": ok} for n, ok in self.items]


def ab_pairs(tools):
    """From tool names like "soak.A", "soak.B", "curl": {"soak": ("soak.A", "soak.B")} for every base
    name that has both an A and a B side."""
    out = {}
    names = set(tools)
    for t in tools:
        if t.endswith(AB_SEP + "A"):
            base = t[: -len(AB_SEP) - 1]
            if base + AB_SEP + "B" in names:
                out[base] = (t, base + AB_SEP + "B")
    return out


def ratio_table(groups, peers, out=print, key_label="workload"):
    """groups: {(tool, key): [seconds...]}; prints one markdown row per group: median, min–max and
    the speed ratio against every peer tool of the same key (peer seconds / this tool's seconds)."""
    out(f"| tool | {key_label} | runs | median s | min–max s | " + " | ".join(f"× {p}" for p in peers) + " |")
    out("|---|---|---|---|---|" + "---|" * len(peers))
    for (tool, key), xs in groups.items():
        s = Spread.of(xs)
        if s is None:
            out(f"| {tool} | {key} | 0 | – | – | " + " | ".join("–" for _ in peers) + " |")
            continue
        ratios = []
        for p in peers:
            o = Spread.of(groups.get((p, key), []))
            ratios.append("–" if p == tool or o is None else fmt_ratio(o.median, s.median))
        out(f"| {tool} | {key} | {s.n} | {s.median:.2f} | {s.lo:.2f}–{s.hi:.2f} | " + " | ".join(ratios) + " |")


def ab_rows(groups, peers=()):
    """A/B comparison rows for every (base, key) that ran both sides: each side's spread, B's speed
    relative to A, whether the difference is inside the spread, and each side's ratio to the peers."""
    tools = list(dict.fromkeys(t for t, _ in groups))
    rows = []
    for base, (ta, tb) in ab_pairs(tools).items():
        for key in dict.fromkeys(k for t, k in groups if t in (ta, tb)):
            a, b = Spread.of(groups.get((ta, key), [])), Spread.of(groups.get((tb, key), []))
            row = {"tool": base, "key": key, "a": a.as_dict() if a else None, "b": b.as_dict() if b else None,
                   "b_speed_vs_a": (a.median / b.median) if a and b and b.median else None,
                   "same_within_spread": same_within_spread(a, b), "peers": {}}
            for p in peers:
                o = Spread.of(groups.get((p, key), []))
                if o:
                    row["peers"][p] = {"a": o.median / a.median if a and a.median else None,
                                       "b": o.median / b.median if b and b.median else None}
            rows.append(row)
    return rows


def print_ab(rows, out=print):
    """The A/B table: medians with min–max for each side; same = difference inside the spread."""
    if not rows:
        return
    out("")
    out("A/B (BENCH_SOAK_A vs BENCH_SOAK_B, alternating runs; same = |median A − median B| ≤ the wider min–max spread)")
    out("| tool | key | A median s [min–max] | B median s [min–max] | B speed × A | same | peer ratios A → B |")
    out("|---|---|---|---|---|---|---|")
    for r in rows:
        a = "–" if not r["a"] else f"{r['a']['median']:.2f} [{r['a']['min']:.2f}–{r['a']['max']:.2f}]"
        b = "–" if not r["b"] else f"{r['b']['median']:.2f} [{r['b']['min']:.2f}–{r['b']['max']:.2f}]"
        sp = "–" if r["b_speed_vs_a"] is None else f"{r['b_speed_vs_a']:.2f}"
        same = {None: "–", True: "yes", False: "NO"}[r["same_within_spread"]]
        peers = "; ".join(f"× {p} {v['a']:.2f} → {v['b']:.2f}" for p, v in r["peers"].items()
                          if v["a"] is not None and v["b"] is not None)
        out(f"| {r['tool']} | {r['key']} | {a} | {b} | {sp} | {same} | {peers or '–'} |")


def machine():
    """Where the figures were measured: what docs/BENCHMARKS.md records with each figure."""
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1048576:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(), "memory": mem}


def results_doc(bench, source, groups, targets=None, extra=None, peers=()):
    """The JSON document of one benchmark run."""
    doc = {
        "bench": bench,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "source": source,
        "groups": [dict(tool=t, key=k, values=list(xs), **(Spread.of(xs).as_dict() if Spread.of(xs) else {"n": 0}))
                   for (t, k), xs in groups.items()],
        "ab": ab_rows(groups, peers),
        "targets": targets.as_list() if targets else [],
    }
    if extra:
        doc.update(extra)
    return doc


def write_json(path, doc):
    """Writes doc to path atomically (a reader never sees half a file)."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def read_lines(path):
    """The lines of a results file, each with its newline."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readlines()
