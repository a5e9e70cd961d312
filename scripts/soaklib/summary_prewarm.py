"""The summary of scripts/bench-prewarm (soak prewarm vs. soak download, aws, rclone and a curl ceiling): the table of medians and ratios, and the targets.
Moved from the script's heredoc; the printed table is unchanged."""
import collections
import statistics

from .report import Targets, read_lines

KEY = "workload"


def summarize(res):
    """Prints RES's table and targets. Returns (exit code: 0 all good, 2 a run failed or did not
    verify, 3 a target failed; groups {(tool, workload): [seconds of each good run]}; Targets)."""
    NAMES = {"prewarm": "soak prewarm", "nomd5": "soak prewarm --no-verify-md5", "soak": "soak download",
             "shm": "soak prewarm, cache on tmpfs", "aws": "aws s3 sync",
             "rclone": "rclone copy", "curl": "curl ceiling"}
    runs = collections.OrderedDict()
    index_bench = index_status = None
    for line in read_lines(res):
        p = line.rstrip("\n").split("\t")
        if len(p) < 17 or p[0] == "tool":
            continue
        tool, wl, run, wall, user, sys_, nbytes, files, rss, hwm, syncs, status, pss, bpo, ibytes, checked, marg = p[:17]
        disk = p[17:20] if len(p) >= 20 and "-" not in p[17:20] else None
        host = p[20:22] if len(p) >= 22 and "-" not in p[20:22] else None
        if tool == "index":
            index_bench = None if status != "ok" else (float(wall), int(files), float(bpo), int(ibytes))
            index_status = status
            continue
        d = runs.setdefault((tool, wl), {"wall": [], "cpu": [], "rss": [], "hwm": [], "sync": [], "bpo": [],
                                         "bytes": int(float(nbytes)), "files": int(files), "bad": [], "checked": 0,
                                         "marg": [], "disk": [], "host": []})
        if bpo != "-": d["bpo"].append(float(bpo))
        if marg != "-": d["marg"].append(float(marg))
        if checked == "1": d["checked"] += 1
        if status != "ok":
            d["bad"].append(f"run {run}: {status}")
            continue
        d["wall"].append(float(wall)); d["cpu"].append(float(user) + float(sys_))
        d["sync"].append(float(syncs))
        if disk: d["disk"].append(tuple(float(x) for x in disk))
        if host: d["host"].append(tuple(float(x) for x in host))
        if rss != "-": d["rss"].append(int(rss))
        if hwm != "-": d["hwm"].append(int(hwm))
    med = lambda xs: statistics.median(xs) if xs else None
    def host_busy(d):
        """Median host core-seconds busy of a tool's runs, and that as a % of all cores (None: not recorded)."""
        if not d["host"]:
            return None
        busy, idle = med([x[0] for x in d["host"]]), med([x[1] for x in d["host"]])
        return busy, (100 * busy / (busy + idle) if busy + idle > 0 else 0)
    def secs(tool, wl, with_sync=False):
        d = runs.get((tool, wl))
        if not d or not d["wall"]:
            return None
        return med([w + s for w, s in zip(d["wall"], d["sync"])]) if with_sync else med(d["wall"])
    fmt_ratio = lambda a, b: f"{a / b:.2f}" if a and b else "–"
    print("| tool | workload | runs | median s | MB/s | client CPU-s/GB | peak RSS MiB (soak: sum; max single) "
          "| index B/object (marginal) | × soak download | × aws | × rclone | × curl | +sync s "
          "| disk MB read / written, s busy | host CPU-s busy (% of all cores) | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (tool, wl), d in runs.items():
        s = med(d["wall"])
        notes = "; ".join(d["bad"])
        name = NAMES.get(tool, tool)
        bpo = (f"{max(d['bpo']):.0f}" + (f" ({max(d['marg']):.0f})" if d["marg"] else "")) if d["bpo"] else "–"
        if s is None:
            print(f"| {name} | {wl} | 0 | – | – | – | – | {bpo} | – | – | – | – | – | – | – | {notes or 'no successful run'} |")
            continue
        gb = d["bytes"] / 1e9
        cpu_gb = med(d["cpu"]) / gb if gb else 0
        rss = f"{max(d['rss']) / 1024:.0f}; {max(d['hwm']) / 1024:.0f}" if d["rss"] else "–"
        ratios = " | ".join("–" if o == tool else fmt_ratio(secs(o, wl), s) for o in ("soak", "aws", "rclone", "curl"))
        disk = (f"{med([x[0] for x in d['disk']]) / 1e6:.0f} / {med([x[1] for x in d['disk']]) / 1e6:.0f}, "
                f"{med([x[2] for x in d['disk']]):.2f}") if d["disk"] else "–"
        hb = host_busy(d)
        host = f"{hb[0]:.2f} ({hb[1]:.0f}%)" if hb else "–"
        print(f"| {name} | {wl} | {len(d['wall'])} | {s:.2f} | {d['bytes'] / 1e6 / s:.0f} | {cpu_gb:.2f} | {rss} "
              f"| {bpo} | {ratios} | {med(d['sync']):.2f} | {disk} | {host} | {notes} |")
    print()
    if index_bench:
        s, n, b, ib = index_bench
        print(f"index bench: recorded {n} objects in {s:.2f} s; index {ib / 1e6:.1f} MB, {b:.0f} bytes/object\n")
    elif index_status:
        print(f"index bench: {index_status}\n")

    T = Targets()
    target = T.check
    wls = list(dict.fromkeys(wl for (_, wl) in runs))
    print("Targets:")
    for wl in wls:
        short = wl.split()[0]
        for variant in ("prewarm", "nomd5"):
            if (variant, wl) not in runs:
                continue
            p, s = secs(variant, wl), secs("soak", wl)
            r = s / p if p and s else None
            label = "prewarm" if variant == "prewarm" else "prewarm --no-verify-md5"
            target(f"{short}: {label} ≥ 0.95× soak download throughput"
                   + (f"  (measured {r:.2f}×)" if r else "  (not measured)"), None if r is None else r >= 0.95)
        if ("prewarm", wl) not in runs:
            continue
        d = runs[("prewarm", wl)]
        b = max(d["bpo"]) if d["bpo"] else None
        m = f"; {max(d['marg']):.0f} beyond an empty index" if d["marg"] else ""
        target(f"{short}: prewarm index ≤ 300 bytes/object" + (f"  (measured {b:.0f}{m})" if b is not None else "  (not measured)"),
               None if b is None else b <= 300)
        target(f"{short}: prewarmed cache complete, every MD5 matches, 0 corrupt blocks"
               + (f"  ({'; '.join(d['bad'])})" if d["bad"] else "" if d["checked"] else "  (not checked: VERIFY)"),
               False if d["bad"] else (True if d["checked"] else None))
    if index_bench:
        s, n, b, _ = index_bench
        per100k = s * 100000 / n if n else 0
        target(f"__bench-index: ≤ 2 s per 100k objects  (measured {per100k:.2f} s)", per100k <= 2)
        target(f"__bench-index: ≤ 300 bytes/object  (measured {b:.0f})", b <= 300)
    else:
        target("__bench-index: ≤ 2 s per 100k objects, ≤ 300 bytes/object  (not measured)", None)
    for wl in wls:
        short = wl.split()[0]
        d = runs.get(("prewarm", wl))
        p = secs("prewarm", wl)
        if not p:
            continue
        parts = [f"{o} {secs(o, wl) / p:.2f}×" for o in ("aws", "rclone", "curl") if secs(o, wl)]
        s1, p1 = secs("soak", wl, True), secs("prewarm", wl, True)
        if s1 and p1:
            parts.insert(0, f"soak download incl. +sync {s1 / p1:.2f}×")
        if secs("shm", wl) and secs("soak", wl):
            parts.append(f"(cache on tmpfs: {secs('soak', wl) / secs('shm', wl):.2f}× soak download)")
        cpu = med(d["cpu"]) / (d["bytes"] / 1e9)
        rss = f", peak RSS {max(d['rss']) / 1024:.0f} MiB" if d["rss"] else ""
        print(f"info  {short}: prewarm speed vs {', '.join(parts) or 'nothing else measured'}; "
              f"{cpu:.2f} client CPU-s/GB{rss}")
        # How busy the whole host was: when soak download already keeps every core busy, the extra
        # work of a prewarm (MD5 checks, durable writes) can only come out of its speed.
        sd = runs.get(("soak", wl))
        if d["host"] and sd and sd["host"]:
            pb, pp = host_busy(d)
            sb, sp = host_busy(sd)
            print(f"info  {short}: host CPU busy {pb:.2f} core-s ({pp:.0f}% of all cores) during prewarm, "
                  f"{sb:.2f} ({sp:.0f}%) during soak download: {pb - sb:+.2f} core-s")
    failed_runs = sum(len(d["bad"]) for d in runs.values())
    if failed_runs:
        print(f"\n{failed_runs} run(s) failed or did not verify; see the notes column")
    code = 2 if failed_runs else (3 if T.failed() else 0)
    groups = collections.OrderedDict(((t, k), list(d["wall"])) for (t, k), d in runs.items())
    return code, groups, T
