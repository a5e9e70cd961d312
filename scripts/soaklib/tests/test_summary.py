"""The benchmarks' summaries: the tables stay what the scripts printed before they moved here
(data/*.expected is the output of the former heredocs on data/*.tsv), plus A/B and JSON."""
import contextlib
import io
import json
import os
import tempfile
import unittest

from soaklib import summary

DATA = os.path.join(os.path.dirname(__file__), "data")


def run(kind, tsv, json_path=None):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = summary.run(kind, os.path.join(DATA, tsv), json_path)
    return code, out.getvalue()


class SummaryTests(unittest.TestCase):
    def test_tables_unchanged(self):
        for kind, code in (("download", 2), ("prewarm", 3), ("mount", 3)):
            with self.subTest(kind=kind):
                got_code, got = run(kind, kind + ".tsv")
                with open(os.path.join(DATA, kind + ".expected")) as f:
                    self.assertEqual(got, f.read())
                self.assertEqual(got_code, code)

    def test_ab_table_and_json(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "r.json")
            code, out = run("download", "download-ab.tsv", p)
            with open(p) as f:
                doc = json.load(f)
        self.assertEqual(code, 0)
        self.assertIn("A/B (BENCH_SOAK_A vs BENCH_SOAK_B", out)
        self.assertIn("| soak | d/ 100×10MiB | 2.02 [1.94–2.08] | 1.99 [1.94–2.11] | 1.02 | yes | × curl 0.97 → 0.99 |", out)
        self.assertEqual(doc["bench"], "bench-download")
        self.assertEqual(doc["key"], "workload")
        self.assertEqual([(g["tool"], g["n"]) for g in doc["groups"]], [("soak.A", 5), ("soak.B", 5), ("curl", 5)])
        self.assertTrue(doc["ab"][0]["same_within_spread"])
        self.assertTrue(all(t["ok"] is None for t in doc["targets"]))  # soak itself did not run: SKIP

    def test_cli_arguments(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(summary.main(["nope", "x.tsv"]), 64)
            self.assertEqual(summary.main(["download"]), 64)
        self.assertIn("usage", err.getvalue())


if __name__ == "__main__":
    unittest.main()
