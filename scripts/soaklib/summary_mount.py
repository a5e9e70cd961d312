"""The summary of scripts/bench-mount (soak mount vs. s3fs and rclone mount): the table of medians and ratios, and the targets.
Moved from the script's heredoc; the printed table is unchanged."""
import collections
import statistics

from .report import Targets, read_lines

KEY = "phase"


def summarize(res):
    """Prints RES's table and targets. Returns (exit code: 0 all good, 2 a run failed or did not
    verify, 3 a target failed; groups {(tool, phase): [seconds of each good run]}; Targets)."""
    LABELS = collections.OrderedDict([
        ("mount", "mount, empty cache (until `ls MNT` answers)"),
        ("seq-cold", "d/ cold sequential cat"),
        ("seq-warm", "d/ warm re-read (same mount, page cache dropped)"),
        ("verify", "d/ md5 through the mount (3rd read)"),
        ("par-cold", "d/ cold, 8 parallel readers"),
        ("small-cold", "small/ cold read (xargs -P8 -n50 cat)"),
        ("small-warm", "small/ warm re-read (page cache dropped)"),
        ("find", "small/ `find -type f \\| wc -l`, fresh mount"),
        ("lsR", "small/ `ls -lR`, fresh mount"),
        ("ttfb-idle", "d/ 4 KiB random-read TTFB, idle"),
        ("ttfb-load", "d/ 4 KiB random-read TTFB under load (soak: prewarm d/ on the same cache; s3fs/rclone: concurrent cat of d/)"),
    ])
    TOOLS = ["soak", "s3fs", "rclone", "ceiling"]
    rows = collections.OrderedDict()
    for line in read_lines(res):
        p = line.rstrip("\n").split("\t")
        if len(p) < 12 or p[0] == "tool":
            continue
        tool, phase, run, secs, nbytes, files, p50, p99, n, rss, status, note = p[:12]
        d = rows.setdefault((tool, phase), {"s": [], "p50": [], "p99": [], "n": [], "rss": [], "bytes": int(nbytes),
                                            "files": int(files), "bad": [], "notes": []})
        if rss not in ("-", ""): d["rss"].append(float(rss))
        if note not in ("-", "") and note not in d["notes"]: d["notes"].append(note)
        if status != "ok":
            d["bad"].append(f"run {run}: {status}")
            continue
        d["s"].append(float(secs))
        if p50 != "-": d["p50"].append(float(p50)); d["p99"].append(float(p99)); d["n"].append(int(n))
    med = lambda xs: statistics.median(xs) if xs else None
    def get(tool, phase, key="s"):
        d = rows.get((tool, phase))
        return med(d[key]) if d else None
    def ratio(tool, phase, other):
        key = "p50" if phase.startswith("ttfb") else "s"
        a, b = get(other, phase, key), get(tool, phase, key)
        return f"{a / b:.2f}" if a and b else "–"
    print("| tool | phase | runs | seconds | MB/s | files/s | p50 ms | p99 ms | soak × s3fs | soak × rclone | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    phases = [ph for ph in LABELS if any(k[1] == ph for k in rows)]
    for ph in phases:
        for tool in TOOLS + sorted({t for t, _ in rows} - set(TOOLS)):
            d = rows.get((tool, ph))
            if not d:
                continue
            notes = list(d["bad"]) + d["notes"]
            if d["rss"]: notes.append(f"daemon RSS {max(d['rss']):.0f} MiB")
            s = med(d["s"])
            if s is None:
                print(f"| {tool} | {LABELS[ph]} | 0 | – | – | – | – | – | – | – | {'; '.join(notes) or 'no successful run'} |")
                continue
            mbs = f"{d['bytes'] / 1e6 / s:.0f}" if d["bytes"] and not ph.startswith("ttfb") else "–"
            fps = f"{d['files'] / s:.0f}" if d["files"] > 1 and not ph.startswith("ttfb") else "–"
            p50 = f"{med(d['p50']):.2f}" if d["p50"] else "–"
            p99 = f"{med(d['p99']):.2f}" if d["p99"] else "–"
            if d["n"]: notes.insert(0, f"{min(d['n'])} reads counted")
            r1 = ratio(tool, ph, "s3fs") if tool.split(".")[0] == "soak" else ""
            r2 = ratio(tool, ph, "rclone") if tool.split(".")[0] == "soak" else ""
            print(f"| {tool} | {LABELS[ph]} | {len(d['s'])} | {s:.2f} | {mbs} | {fps} | {p50} | {p99} | {r1} | {r2} "
                  f"| {'; '.join(notes)} |")
    print()
    T = Targets()
    target = T.check
    def check_ratio(label, phase, other, need):
        a, b = get(other, phase), get("soak", phase)
        r = a / b if a and b else None
        note = ""
        c = get("ceiling", phase)
        d = rows.get(("soak", phase))
        if r is not None and r < need and c and a and d and d["bytes"]:
            # What the target asks for, against what this machine allows any reader (the ceiling rows).
            want, most = d["bytes"] / 1e6 / (a / need), d["bytes"] / 1e6 / c
            if want > most:
                note = f"; {need}× {other} is {want:.0f} MB/s, above this machine's ceiling of {most:.0f} MB/s"
        target(f"{label}: soak ≥ {need}× {other}" + (f"  (measured {r:.2f}×{note})" if r else "  (not measured)"),
               None if r is None else r >= need)
    print("Targets:")
    check_ratio("d/ warm re-read", "seq-warm", "s3fs", 2)
    check_ratio("d/ cold sequential", "seq-cold", "s3fs", 2)
    check_ratio("small/ cold read", "small-cold", "rclone", 2)
    check_ratio("small/ ls -lR", "lsR", "rclone", 10)
    for key, need, name in (("p50", 1.5, "p50"), ("p99", 3, "p99")):
        idle, load = get("soak", "ttfb-idle", key), get("soak", "ttfb-load", key)
        r = load / idle if idle and load else None
        target(f"TTFB under prewarm load: soak {name} ≤ {need}× idle"
               + (f"  (measured {load:.2f} / {idle:.2f} ms = {r:.2f}×)" if r else "  (not measured)"),
               None if r is None else r <= need)
    v = rows.get(("soak", "verify"))
    target("soak: every d/ file read through the mount matches the manifest md5"
           + ("" if v and (v["s"] or v["bad"]) else "  (not checked)"),
           None if not v or not (v["s"] or v["bad"]) else not v["bad"])
    failed = sum(len(d["bad"]) for d in rows.values())
    if failed:
        print(f"\n{failed} measurement(s) failed or did not verify; see the notes column")
    code = 2 if failed else (3 if T.failed() else 0)
    groups = collections.OrderedDict(((t, k), list(d["s"])) for (t, k), d in rows.items())
    return code, groups, T
