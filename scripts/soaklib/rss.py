"""RSS sampler of a process tree (python3 -m soaklib.rss ROOT_PID OUT INTERVAL_MS [NAME]).

Every interval, sum VmRSS (and Pss) of the processes named NAME ("" = every descendant) that
descend from ROOT_PID; at the end (ROOT_PID gone) write to OUT:
  <peak sum VmRSS KiB> <max single VmHWM KiB> <samples> <peak sum Pss KiB>
(Pss counts shared pages, e.g. the binary's text, once overall instead of once per process.)
The tree is walked through /proc/PID/task/TID/children (only the tree is read); without that file
(no CONFIG_PROC_CHILDREN), all of /proc is scanned.

python3 -m soaklib.rss tree PID: the summed VmRSS (MiB) of PID and its descendants, once."""
import os
import sys


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def descendants_tree(root):
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            todo.extend(int(c) for c in read(f"/proc/{pid}/task/{tid}/children").split())
    return seen


def descendants_scan(root):
    parent = {}
    for e in os.scandir("/proc"):
        if e.name.isdigit():
            st = read(f"/proc/{e.name}/stat")
            if st:
                parent[int(e.name)] = int(st[st.rindex(")") + 2:].split()[1])
    found = []
    for pid in parent:
        p, hops = pid, 0
        while p > 1 and p != root and hops < 64:
            p, hops = parent.get(p, 0), hops + 1
        if p == root:
            found.append(pid)
    return found


def sample(root, only=""):
    """One sample: (sum VmRSS KiB, max VmHWM KiB, sum Pss KiB) of root's descendants (root excluded)."""
    have_children = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    total = pss = hwm = 0
    for pid in (descendants_tree(root) if have_children else descendants_scan(root)):
        if pid == root or (only and read(f"/proc/{pid}/comm").strip() != only):
            continue
        for line in read(f"/proc/{pid}/status").splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = max(hwm, int(line.split()[1]))
        for line in read(f"/proc/{pid}/smaps_rollup").splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
                break
    return total, hwm, pss


def tree_rss_kib(root):
    """Summed VmRSS (KiB) of root and its descendants, now."""
    total = 0
    for pid in descendants_tree(root):
        for line in read(f"/proc/{pid}/status").splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def main(argv):
    import time
    if argv[:1] == ["tree"]:
        print(f"{tree_rss_kib(int(argv[1])) / 1024:.0f}")
        return 0
    root, out, interval = int(argv[0]), argv[1], int(argv[2]) / 1000
    only = argv[3] if len(argv) > 3 else ""
    peak = hwm = samples = peak_pss = 0
    while os.path.exists(f"/proc/{root}"):
        total, h, pss = sample(root, only)
        peak, hwm, peak_pss = max(peak, total), max(hwm, h), max(peak_pss, pss)
        samples += 1
        time.sleep(interval)
    with open(out, "w") as f:
        f.write(f"{peak} {hwm} {samples} {peak_pss}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
