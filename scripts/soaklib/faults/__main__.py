"""python3 -m soaklib.faults COMMAND ...   (called by scripts/test-faults)

rows QUICK RATE BCR_RATE FUSE(0/1) [FAULT...]   the rows to run, one per line (rows.Row.tsv)
table RESULTS MANIFEST SECONDS                   the closing table
dataset SRC QUICK SEED                           write the dataset
manifest SRC                                     print its manifest
check MODE TOOL FAULT RC OUT ERR STATS PROXYERR MANIFEST BUCKET PREFIX   one download/prewarm row
check-mount MODE MNT MANIFEST STATS FAULT        one mount row"""
import sys

from . import check, checkmount, dataset, rows


def run(argv):
    cmd, args = (argv[0] if argv else ""), argv[1:]
    if cmd == "rows":
        quick, rate, bcr, fuse = args[0] == "1", args[1], args[2], args[3] == "1"
        for r in rows.plan(quick, rate, args[4:], fuse=fuse, bcr_rate=bcr):
            print(r.tsv())
        return 0
    if cmd == "table":
        res = rows.read_results(args[0])
        man = [l for l in open(args[1]) if l.strip()]
        total = sum(int(l.split("\t")[1]) for l in man)
        print(rows.table(res, total, len(man), int(args[2])))
        return 0
    if cmd == "dataset":
        dataset.write(args[0], args[1] == "1", int(args[2]))
        return 0
    if cmd == "manifest":
        for line in dataset.manifest(args[0]):
            print(line)
        return 0
    if cmd == "check":
        return check.main(args)
    if cmd == "check-mount":
        return checkmount.main(args)
    sys.stderr.write(__doc__ + "\n")
    return 64


sys.exit(run(sys.argv[1:]))
