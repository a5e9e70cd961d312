"""The benchmarks' helpers: the TTFB reader, the cache check and the tree RSS."""
import contextlib
import hashlib
import io
import os
import sqlite3
import subprocess
import tempfile
import unittest

from soaklib import cachecheck, rss, ttfb


class TtfbTests(unittest.TestCase):
    def test_plan_and_percentile(self):
        names, sizes = ["a", "b"], {"a": 10000, "b": 100}
        p = ttfb.make_plan(names, sizes, 50, 3)
        self.assertEqual(p, ttfb.make_plan(names, sizes, 50, 3))
        self.assertTrue(all(off % 4096 == 0 and off < max(sizes[n], 4096) for n, off in p))
        self.assertEqual(ttfb.percentile([], 0.5), 0)
        s = list(range(1, 101))
        self.assertEqual((ttfb.percentile(s, 0.5), ttfb.percentile(s, 0.99), ttfb.percentile(s, 1)), (50, 99, 100))

    def test_reads_compared_with_the_source(self):
        with tempfile.TemporaryDirectory() as d:
            src, mnt = os.path.join(d, "src"), os.path.join(d, "mnt")
            os.makedirs(src)
            os.makedirs(mnt)
            for n in ("f1", "f2"):
                data = os.urandom(20000)
                for root in (src, mnt):
                    with open(os.path.join(root, n), "wb") as f:
                        f.write(data if root == src or n == "f1" else bytes(20000))
            out = os.path.join(d, "out")
            self.assertEqual(ttfb.main([mnt, src, "40", "1", out]), 0)
            with open(out) as f:
                p50, p99, counted, bad, errors = f.read().split()[:5]
            self.assertEqual(counted, "40")
            self.assertGreater(int(bad), 0)  # f2 differs: every read of it is a mismatch
            self.assertEqual(errors, "0")
            with open(out + ".lat") as f:
                self.assertEqual(len(f.read().split()), 40)


class CacheCheckTests(unittest.TestCase):
    def make_cache(self, d, objects):
        os.makedirs(os.path.join(d, "data"))
        c = sqlite3.connect(os.path.join(d, "index.db"))
        c.execute("create table objects (id integer primary key, key text, gen integer, size integer, cached integer)")
        for i, (key, data, cached) in enumerate(objects, 1):
            c.execute("insert into objects values (?, ?, 1, ?, ?)", (i, key, len(data), cached))
            with open(os.path.join(d, "data", "%d.1" % i), "wb") as f:
                f.write(data + b"\0" * 100)  # data files may be longer than the object
        c.commit()
        c.close()

    def run_check(self, d, manifest, md5="1"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            cachecheck.main([d, manifest, "d/", md5])
        return out.getvalue().splitlines()

    def test_complete_cache_and_a_wrong_byte(self):
        with tempfile.TemporaryDirectory() as d:
            cache = os.path.join(d, "cache")
            objs = {"a": b"alpha", "b": os.urandom(3 << 20)}
            man = os.path.join(d, "manifest.md5")
            with open(man, "w") as f:
                for n, data in objs.items():
                    f.write("%s  %s\n" % (hashlib.md5(data).hexdigest(), n))
            self.make_cache(cache, [("d/a", objs["a"], 5), ("d/b", objs["b"], len(objs["b"]))])
            lines = self.run_check(cache, man)
            self.assertEqual(lines[1], "ok")
            self.assertEqual(lines[0].split()[2], "2")
            with open(os.path.join(cache, "data", "2.1"), "r+b") as f:
                f.seek(1 << 20)
                f.write(b"X")
            self.assertEqual(self.run_check(cache, man)[1], "CACHE 1 md5 mismatch (e.g. md5 mismatch: d/b)")
            self.assertEqual(self.run_check(cache, man, md5="0")[1], "ok")

    def test_missing_and_incomplete(self):
        with tempfile.TemporaryDirectory() as d:
            cache = os.path.join(d, "cache")
            man = os.path.join(d, "manifest.md5")
            with open(man, "w") as f:
                f.write("%s  a\n%s  b\n" % (hashlib.md5(b"aa").hexdigest(), hashlib.md5(b"bb").hexdigest()))
            self.make_cache(cache, [("d/a", b"aa", 1)])
            self.assertEqual(self.run_check(cache, man)[1],
                             "CACHE 1 missing, 1 incomplete (e.g. incomplete: d/a cached 1 of 2; missing: d/b)")


class TreeRssTests(unittest.TestCase):
    def test_tree_includes_the_root(self):
        p = subprocess.Popen(["sleep", "5"])
        try:
            self.assertGreater(rss.tree_rss_kib(p.pid), 0)
            self.assertGreaterEqual(rss.tree_rss_kib(os.getpid()), rss.tree_rss_kib(p.pid))
        finally:
            p.kill()
            p.wait()


if __name__ == "__main__":
    unittest.main()
