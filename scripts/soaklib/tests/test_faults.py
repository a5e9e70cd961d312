import contextlib
import hashlib
import io
import os
import tempfile
import unittest

from soaklib.faults import check, dataset, rows
from soaklib.faults.stall import stall_verdict


class RowTests(unittest.TestCase):
    def test_quick_rows(self):
        got = [(r.kind, r.fault, r.tool, r.rate) for r in rows.plan(True, "0.2")]
        run = [(f, t) for k, f, t, _ in got if k == "run"]
        self.assertEqual(len(run), 18)
        self.assertEqual([f for k, f, _, _ in got if k == "mount"], list(rows.QUICK_MOUNT))
        self.assertEqual([t for f, t in run if f == "stall"], ["download"])
        self.assertEqual([t for f, t in run if f == "500"], ["download", "prewarm"])
        rates = {f: r for k, f, _, r in got}
        self.assertEqual((rates["stall"], rates["mixed"], rates["bad-content-range"], rates["500"]), ("0.1", "0.3", "0.5", "0.2"))

    def test_full_rows(self):
        rs = rows.plan(False, "0.2")
        self.assertEqual(sum(1 for r in rs if r.kind == "run"), 23)  # 11 faults × 2 tools + hostile-ctl
        self.assertEqual(sum(1 for r in rs if r.kind == "mount"), 11)
        self.assertEqual(rows.plan(False, "0.2", fuse=False), [r for r in rs if r.kind == "run"])

    def test_selection_modes_env(self):
        rs = rows.plan(False, "0.8", ["hostile-ctl", "etag-change", "mixed"])
        self.assertEqual([(r.kind, r.fault, r.tool, r.mode) for r in rs], [
            ("run", "etag-change", "download", "changed"), ("run", "etag-change", "prewarm", "changed"),
            ("run", "hostile-ctl", "download", "ctl"), ("run", "mixed", "download", "ok"), ("run", "mixed", "prewarm", "ok"),
            ("mount", "etag-change", "mount", "changed"), ("mount", "mixed", "mount", "ok")])
        self.assertEqual(rs[2].env, "MAX_RETRIES=3")
        self.assertEqual(rs[3].rate, "1")  # 1.5 × 0.8, capped at 1
        self.assertIn("stall", rs[3].tsv().split("\t")[5])
        self.assertNotIn("stall", rs[-1].tsv().split("\t")[5])  # the mount's mix leaves stall out
        self.assertEqual(rows.plan(True, "0.2", ["nosuchfault"]), [])

    def test_rate_format(self):
        self.assertEqual(rows.fmt_rate(0.3 * 1.5), "0.45")
        self.assertEqual(rows.fmt_rate(1), "1")

    def test_table(self):
        res = [["500", "download", "3", "100", "PASS", "1.0", ""], ["500", "prewarm", "2", "90", "FAIL", "2.0", "x"]]
        t = rows.table(res, 190, 9, 42).split("\n")
        self.assertEqual(t[1].split("|")[0].strip(), "fault type")
        self.assertEqual(t[-1], "2 rows, 1 FAIL; dataset 190 bytes in 9 objects; total 42 s")
        with tempfile.NamedTemporaryFile("w", suffix=".tsv") as f:
            f.write("500\tdownload\t3\t100\tPASS\t1.0\t\nshort\n")
            f.flush()
            self.assertEqual(rows.read_results(f.name), [["500", "download", "3", "100", "PASS", "1.0", ""]])


class CheckTests(unittest.TestCase):
    def test_failures_parsing(self):
        err = "soak: 9 objects; 2 failed:\n  a: boom\n  b: bang\n"
        self.assertEqual(check.failures(err), (2, ["  a: boom", "  b: bang", ""]))
        self.assertEqual(check.failures("all fine\n"), (0, []))
        self.assertEqual(check.last_line("a\n\nb  \n\n"), "b")

    def test_stall_verdict(self):
        st = {"stall": {"seconds_to_abort": [1.1, 1.4], "by_variant": {"head": [1], "body": [1]}}}
        self.assertEqual(stall_verdict(st, 5), ([], "2 stall(s) (body 1, head 1) abandoned by soak after 1.1-1.4 s"))
        probs, _ = stall_verdict({"stall": {"seconds_to_abort": [6.0], "timed_out": 1}}, 5)
        self.assertEqual(probs, ["soak waited out 1 stall(s) (never abandoned)",
                                 "1 stall(s) abandoned only after 6.0 s (limit 5 s)"])
        self.assertEqual(stall_verdict({}, 5), ([], ""))

    def _row(self, files, rc=0, mode="ok"):
        """check.main on a download row whose DEST holds files; returns its printed fields."""
        with tempfile.TemporaryDirectory() as d:
            man = os.path.join(d, "manifest.tsv")
            with open(man, "w") as f:
                for rel, data in sorted(self.want.items()):
                    f.write("%s\t%d\t%s\n" % (rel, len(data), hashlib.sha256(data).hexdigest()))
            for name in ("err", "proxy.err"):
                open(os.path.join(d, name), "w").close()
            box = os.path.join(d, "box")
            os.makedirs(box)
            out_dir = os.path.join(box, "out")
            for rel, data in files.items():
                p = os.path.join(out_dir, rel)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "wb") as f:
                    f.write(data)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                check.main([mode, "download", "500", str(rc), out_dir, os.path.join(d, "err"), os.path.join(d, "stats.json"),
                            os.path.join(d, "proxy.err"), man, "faults", "data/"])
        return out.getvalue().rstrip("\n").split("\t")

    want = {"a": b"alpha", "n/b": b"", "n/c": b"x" * 5000}

    def test_row_passes_when_every_byte_is_right(self):
        self.assertEqual(self._row(self.want)[:3], ["PASS", "0", "5005"])

    def test_row_fails_on_a_wrong_byte_a_stray_or_no_dest(self):
        bad = dict(self.want, **{"n/c": b"x" * 4999 + b"y"})
        r = self._row(bad)
        self.assertEqual(r[0], "FAIL")
        self.assertIn("WRONG BYTES in 1 object(s): n/c", r[3])
        r = self._row(dict(self.want, stray=b"?"))
        self.assertEqual(r[0], "FAIL")
        self.assertIn("unexpected files in DEST", r[3])
        r = self._row({}, rc=1)
        self.assertEqual(r[0], "FAIL")
        self.assertIn("no DEST", r[3])
        self.assertIn("missing 3 object(s)", r[3])

    def test_dataset_is_seeded(self):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            dataset.write(a, True, 7)
            dataset.write(b, True, 7)
            ma, mb = dataset.manifest(a), dataset.manifest(b)
        self.assertEqual(ma, mb)
        self.assertEqual(len(ma), 9)  # 8 objects and the multipart one
        self.assertIn("empty\t0\t" + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ma)
        self.assertTrue(any(l.startswith("nested/b/deeper/obj02\t") for l in ma))


if __name__ == "__main__":
    unittest.main()
