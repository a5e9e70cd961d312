"""The summary of scripts/bench-download (soak download vs. aws s3 sync, rclone copy and a curl ceiling): the table of medians and ratios, and the targets.
Moved from the script's heredoc; the printed table is unchanged."""
import collections
import statistics

from .report import Targets, read_lines

KEY = "workload"


def summarize(res):
    """Prints RES's table and targets. Returns (exit code: 0 all good, 2 a run failed or did not
    verify, 3 a target failed; groups {(tool, workload): [seconds of each good run]}; Targets)."""
    runs = collections.OrderedDict()
    for line in read_lines(res):
        p = line.rstrip("\n").split("\t")
        if len(p) < 12 or p[0] == "tool":
            continue
        tool, wl, run, wall, user, sys_, nbytes, files, rss, hwm, syncs, status = p[:12]
        pss = p[12] if len(p) > 12 else "-"
        d = runs.setdefault((tool, wl), {"wall": [], "cpu": [], "rss": [], "hwm": [], "sync": [], "pss": [],
                                         "bytes": int(float(nbytes)), "files": int(files), "bad": []})
        if status != "ok":
            d["bad"].append(f"run {run}: {status}")
            continue
        d["wall"].append(float(wall)); d["cpu"].append(float(user) + float(sys_))
        d["sync"].append(float(syncs))
        if rss != "-": d["rss"].append(int(rss))
        if hwm != "-": d["hwm"].append(int(hwm))
        if pss not in ("-", "", "0"): d["pss"].append(int(pss))
    med = lambda xs: statistics.median(xs) if xs else None
    def tool_med(tool, wl):
        d = runs.get((tool, wl))
        return med(d["wall"]) if d else None
    print("| tool | workload | runs | median s | min–max s | MB/s | × curl ceiling | × rclone | × aws "
          "| client CPU-s/GB | peak RSS MiB (soak: sum of all processes; max single; sum of PSS) | +sync s | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    fmt_ratio = lambda a, b: f"{a / b:.2f}" if a and b else "–"
    for (tool, wl), d in runs.items():
        s = med(d["wall"])
        notes = "; ".join(d["bad"])
        if s is None:
            print(f"| {tool} | {wl} | 0 | – | – | – | – | – | – | – | – | – | {notes or 'no successful run'} |")
            continue
        gb = d["bytes"] / 1e9
        cpu_gb = med(d["cpu"]) / gb if gb else 0
        rss = (f"{max(d['rss']) / 1024:.0f}; {max(d['hwm']) / 1024:.0f}; "
               + (f"{max(d['pss']) / 1024:.0f}" if d["pss"] else "–") if d["rss"] else "–")
        print(f"| {tool} | {wl} | {len(d['wall'])} | {s:.2f} | {min(d['wall']):.2f}–{max(d['wall']):.2f} "
              f"| {d['bytes'] / 1e6 / s:.0f} | {fmt_ratio(tool_med('curl', wl), s)} | {fmt_ratio(tool_med('rclone', wl), s)} "
              f"| {fmt_ratio(tool_med('aws', wl), s)} | {cpu_gb:.2f} | {rss} | {med(d['sync']):.2f} | {notes} |")
    print()
    # targets
    T = Targets()
    target = T.check
    def soak_ratio(other, wl):
        s, o = tool_med("soak", wl), tool_med(other, wl)
        return o / s if s and o else None
    def check_ratio(label, other, wl, need):
        r = soak_ratio(other, wl)
        target(f"{label}: soak ≥ {need}× {other}" + (f"  (measured {r:.2f}×)" if r else "  (not measured)"),
               None if r is None else r >= need)
    wls = [wl for (_, wl) in runs]
    dwl = next((w for w in wls if w.startswith("d/")), None)
    swl = next((w for w in wls if w.startswith("small/")), None)
    bwl = next((w for w in wls if w.startswith("big/")), None)
    print("Targets:")
    check_ratio("d/", "curl", dwl, 0.95)
    check_ratio("d/", "rclone", dwl, 1.35)
    check_ratio("small/", "curl", swl, 1.0)
    cpu_wls = [w for w in (dwl, bwl) if w] or ["d/"]
    for wl in cpu_wls:
        d = runs.get(("soak", wl))
        if d and d["cpu"]:
            c = med(d["cpu"]) / (d["bytes"] / 1e9)
            target(f"{wl.split()[0]}: soak ≤ 0.6 client CPU-s/GB  (measured {c:.2f})", c <= 0.6)
        else:
            target(f"{wl.split()[0]}: soak ≤ 0.6 client CPU-s/GB  (not measured)", None)
    d = runs.get(("soak", swl)) if swl else None
    if d and d["cpu"]:
        print(f"info  small/: soak {med(d['cpu']) / (d['bytes'] / 1e9):.2f} client CPU-s/GB")
    rss = [max(d["rss"]) for (t, _), d in runs.items() if t == "soak" and d["rss"]]
    target(f"soak total peak RSS ≤ 150 MiB" + (f"  (measured {max(rss) / 1024:.0f} MiB)" if rss else "  (not measured)"),
           (max(rss) / 1024 <= 150) if rss else None)
    failed_runs = sum(len(d["bad"]) for d in runs.values())
    if failed_runs:
        print(f"\n{failed_runs} run(s) failed or did not verify; see the notes column")
    code = 2 if failed_runs else (3 if T.failed() else 0)
    groups = collections.OrderedDict(((t, k), list(d["wall"])) for (t, k), d in runs.items())
    return code, groups, T
