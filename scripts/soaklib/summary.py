"""The benchmarks' summaries: python3 -m soaklib.summary download|prewarm|mount RESULTS.tsv [--json FILE]

Prints the benchmark's table of medians and speed ratios and its PASS/FAIL targets (as the scripts
always did), then, when the results hold an A/B comparison (tools "X.A" and "X.B", written when
BENCH_SOAK_A and BENCH_SOAK_B are set), the A/B table: each side's median with its min–max and
whether the difference is inside the spread. --json FILE (or BENCH_JSON=FILE) also writes every
group's runs, the A/B rows and the targets as JSON (soaklib.report.results_doc).
Exit status: 0 all good, 2 a run failed or did not verify, 3 a target failed (the scripts map these)."""
import os
import sys

from . import report, summary_download, summary_mount, summary_prewarm

KINDS = {
    # kind: (module, the peers the A/B rows give ratios against)
    "download": (summary_download, ("curl", "rclone", "aws")),
    "prewarm": (summary_prewarm, ("soak", "curl", "rclone", "aws")),
    "mount": (summary_mount, ("s3fs", "rclone", "ceiling")),
}


def run(kind, res, json_path=None):
    mod, peers = KINDS[kind]
    code, groups, targets = mod.summarize(res)
    report.print_ab(report.ab_rows(groups, peers))
    if json_path:
        doc = report.results_doc(f"bench-{kind}", os.path.abspath(res), groups, targets, peers=peers,
                                 extra={"exit": code, "key": mod.KEY})
        report.write_json(json_path, doc)
        print(f"\nJSON results: {json_path}")
    return code


def main(argv):
    args, json_path = [], os.environ.get("BENCH_JSON") or None
    it = iter(argv)
    for a in it:
        if a == "--json":
            json_path = next(it, None)
        elif a.startswith("--json="):
            json_path = a.split("=", 1)[1]
        else:
            args.append(a)
    if len(args) != 2 or args[0] not in KINDS or not json_path and "--json" in argv:
        sys.stderr.write("usage: python3 -m soaklib.summary download|prewarm|mount RESULTS.tsv [--json FILE]\n")
        return 64
    return run(args[0], args[1], json_path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
