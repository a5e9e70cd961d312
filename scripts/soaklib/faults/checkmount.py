"""One mount row of the fault suite: every file read through the mount against the manifest, every
directory lists one `.` and one `..`, no impossible name, ESTALE at most once for a changed object.
Prints one line: result TAB faults injected TAB bytes verified TAB note."""
import hashlib
import json
import os
import subprocess

from .stall import stall_verdict


def main(argv):
    mode, mnt, manifest, stats, fault = argv[:5]
    want = {}
    for line in open(manifest):
        rel, size, sha = line.rstrip("\n").split("\t")
        want[rel] = sha
    problems, verified, extra, changed_reads = [], 0, 0, []
    # Every directory lists exactly one "." and one ".." (raw readdir via ls -a), no other dot names.
    for d, dirs, files in os.walk(mnt):
        names = subprocess.run(["ls", "-a1", "--quoting-style=escape", d], capture_output=True, text=True).stdout.split("\n")
        if names.count(".") != 1 or names.count("..") != 1:
            problems.append("directory %r lists . or .. more than once" % d[len(mnt):])
        for f in files:
            p = os.path.join(d, f)
            rel = os.path.relpath(p, mnt)
            parts = rel.split("/")
            if any(c in ("", ".", "..") or len(c.encode("utf-8", "surrogateescape")) > 255 or "\0" in c for c in parts):
                problems.append("impossible name shown: %r" % rel[:80])
            try:
                data = open(p, "rb").read()
            except OSError as e:
                # An object that changed under a read answers ESTALE once; the next open sees the
                # current version (here the same bytes: the proxy only pretends it changed).
                if mode == "changed" and e.errno == 116:
                    changed_reads.append(rel)
                    try:
                        data = open(p, "rb").read()
                    except OSError as e2:
                        problems.append("%s: %s (after ESTALE)" % (rel[:80], e2)); continue
                else:
                    problems.append("%s: %s" % (rel[:80], e)); continue
            if rel in want:
                if hashlib.sha256(data).hexdigest() != want[rel]:
                    problems.append("WRONG BYTES %s" % rel)
                else:
                    verified += len(data)
            elif data == b"hostile!!\n" and mode == "hostile":
                extra += 1
            else:
                problems.append("unexpected file %r" % rel[:80])
    missing = [k for k in want if not os.path.exists(os.path.join(mnt, k))]
    if missing:
        problems.append("missing: %s" % ", ".join(sorted(missing)[:5]))
    injected, stall_note = "", ""
    try:
        injected = str(json.load(open(stats))["injected"].get(fault, "")) if fault != "mixed" else str(sum(json.load(open(stats))["injected"].values()))
    except Exception:
        pass
    if fault in ("stall", "mixed"):
        try: st = json.load(open(stats))
        except Exception: st = {}
        stall_problems, stall_note = stall_verdict(st, float(os.environ["STALL_ABORT"]))
        problems += stall_problems
    note = "; ".join(problems[:3]) if problems else ("%d hostile names shown as plain files" % extra if extra
            else ("%d read(s) answered ESTALE, then right on reopening" % len(changed_reads) if changed_reads else stall_note))
    print("%s\t%s\t%d\t%s" % ("FAIL" if problems else "PASS", injected, verified, note))
    return 0
