import json
import os
import tempfile
import unittest

from soaklib import report


class ReportTests(unittest.TestCase):
    def setUp(self):
        self.groups = {
            ("soak.A", "d/"): [2.0, 2.1, 1.9, 2.05, 1.95],
            ("soak.B", "d/"): [2.2, 2.0, 2.1, 2.15, 2.05],
            ("curl", "d/"): [2.0, 2.0, 2.0, 2.0, 2.0],
            ("rclone", "d/"): [3.0, 3.2],
        }

    def test_ab_pairs(self):
        self.assertEqual(report.ab_pairs(["soak.A", "soak.B", "curl", "prewarm.A"]), {"soak": ("soak.A", "soak.B")})
        self.assertEqual(report.ab_pairs(["soak", "curl"]), {})

    def test_ab_rows(self):
        rows = report.ab_rows(self.groups, peers=("curl", "aws"))
        self.assertEqual(len(rows), 1)
        r = rows[0]
        self.assertEqual((r["tool"], r["key"]), ("soak", "d/"))
        self.assertEqual(r["a"], {"n": 5, "median": 2.0, "min": 1.9, "max": 2.1})
        self.assertAlmostEqual(r["b_speed_vs_a"], 2.0 / 2.1)
        self.assertTrue(r["same_within_spread"])
        self.assertEqual(set(r["peers"]), {"curl"})  # aws did not run
        self.assertAlmostEqual(r["peers"]["curl"]["a"], 1.0)
        self.assertAlmostEqual(r["peers"]["curl"]["b"], 2.0 / 2.1)

    def test_ab_rows_flag_a_real_difference(self):
        g = dict(self.groups)
        g[("soak.B", "d/")] = [3.0, 3.05, 3.1, 2.95, 3.0]
        self.assertFalse(report.ab_rows(g)[0]["same_within_spread"])

    def test_print_ab_and_ratio_table(self):
        out = []
        report.print_ab(report.ab_rows(self.groups, ("curl",)), out=out.append)
        self.assertIn("| soak | d/ | 2.00 [1.90–2.10] | 2.10 [2.00–2.20] | 0.95 | yes | × curl 1.00 → 0.95 |", out)
        out = []
        report.ratio_table(self.groups, ("curl", "rclone"), out=out.append)
        self.assertEqual(out[0], "| tool | workload | runs | median s | min–max s | × curl | × rclone |")
        self.assertIn("| soak.A | d/ | 5 | 2.00 | 1.90–2.10 | 1.00 | 1.55 |", out)
        self.assertIn("| curl | d/ | 5 | 2.00 | 2.00–2.00 | – | 1.55 |", out)

    def test_print_ab_nothing_without_pairs(self):
        out = []
        report.print_ab(report.ab_rows({("soak", "d/"): [1.0]}), out=out.append)
        self.assertEqual(out, [])

    def test_targets(self):
        out = []
        t = report.Targets(out=out.append)
        t.check("a", True)
        t.check("b", None)
        self.assertFalse(t.failed())
        t.check("c", False)
        self.assertTrue(t.failed())
        self.assertEqual(out, ["PASS  a", "SKIP  b", "FAIL  c"])
        self.assertEqual(t.as_list()[2], {"name": "c", "ok": False})

    def test_json_document(self):
        t = report.Targets(out=lambda s: None)
        t.check("x", True)
        doc = report.results_doc("bench-download", "/r.tsv", self.groups, t, peers=("curl",), extra={"exit": 0})
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "sub", "r.json")
            report.write_json(p, doc)
            with open(p) as f:
                back = json.load(f)
            self.assertEqual(os.listdir(os.path.dirname(p)), ["r.json"])  # no temporary left
        self.assertEqual(back["bench"], "bench-download")
        self.assertEqual(back["exit"], 0)
        self.assertEqual(back["targets"], [{"name": "x", "ok": True}])
        g = {(x["tool"], x["key"]): x for x in back["groups"]}
        self.assertEqual(g[("rclone", "d/")]["median"], 3.1)
        self.assertEqual(g[("soak.A", "d/")]["values"], [2.0, 2.1, 1.9, 2.05, 1.95])
        self.assertEqual(len(back["ab"]), 1)
        self.assertIn("cpus", back["machine"])


if __name__ == "__main__":
    unittest.main()
