import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from soaklib.kill9 import main as k9main
from soaklib.kill9 import procs, reqlog, snapshots, state


class Kill9Tests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.saved = {k: getattr(state, k) for k in ("MAN", "BUCKET", "PREFIX", "REQLOG", "WORK", "E", "SPEED")}
        state.MAN = {"big": (10 * state.M, "x", None), "sub/s": (1000, "y", None)}
        state.BUCKET, state.PREFIX, state.WORK = "kill9", "data/", self.tmp.name
        state.REQLOG = os.path.join(self.tmp.name, "requests.log")

    def tearDown(self):
        for k, v in self.saved.items():
            setattr(state, k, v)
        self.tmp.cleanup()

    def test_soak_environment(self):
        state.E = {"PATH": "/bin", "https_proxy": "http://p:1", "AWS_PROFILE": "x", "MAX_SPEED": "1",
                   "MAX_RETRIES": "99", "SOAK_TEST_ENDPOINT": "http://127.0.0.1:8361"}
        state.SPEED = "36"
        e = procs.env_for(False)
        self.assertEqual({k: e.get(k) for k in ("https_proxy", "AWS_PROFILE", "MAX_SPEED", "MAX_RETRIES", "MIN_PROCESSES",
                                                 "AWS_EC2_METADATA_DISABLED", "PATH")},
                         {"https_proxy": None, "AWS_PROFILE": None, "MAX_SPEED": None, "MAX_RETRIES": "5",
                          "MIN_PROCESSES": "2", "AWS_EC2_METADATA_DISABLED": "true", "PATH": "/bin"})
        self.assertEqual(procs.env_for(True)["MAX_SPEED"], "36")

    def test_plans_are_seeded_and_shaped(self):
        a, b = k9main.make_plans(1, 5, 5, 5), k9main.make_plans(1, 5, 5, 5)
        self.assertEqual(a, b)
        self.assertEqual(len(a), 15)
        self.assertEqual([p[0] for p in a], ["download"] * 5 + ["prewarm"] * 5 + ["mount"] * 5)
        for tool, i, kills, _, _ in a:
            self.assertEqual(len(kills), 2 if i % 3 == 2 else 1)
            lo, hi = (0.05, 2.5) if tool == "mount" else (0.3, 3.0)
            self.assertTrue(all(lo <= d <= hi for _, d in kills))
        self.assertEqual([p[2][0][0] for p in a[:2]], ["coordinator", "worker"])
        self.assertNotEqual(a, k9main.make_plans(2, 5, 5, 5))
        self.assertEqual(len(k9main.make_plans(1, 20, 20, 12)), 52)

    def test_request_log_parsing(self):
        with open(state.REQLOG, "w") as f:
            f.write("GET\t/kill9/data/big?x-id=GetObject\tbytes=0-1048575\n")
            f.write("HEAD\t/kill9/data/big\t\n")
            f.write("GET\t/kill9/data/sub%2Fs\t\n")
            f.write("GET\t/kill9/data/big\tbytes=10485000-\n")
            f.write("GET\t/kill9/data/big\tbytes=-100\n")
            f.write("GET\t/kill9/?list-type=2\t\n")
            f.write("GET\t/kill9/data/other\tbytes=0-1\n")
        self.assertEqual(reqlog.object_gets(0), [
            ("big", 0, state.M), ("sub/s", 0, 1000), ("big", 10485000, 10 * state.M), ("big", 10 * state.M - 100, 10 * state.M)])
        mark = reqlog.reqlog_mark()
        with open(state.REQLOG, "a") as f:
            f.write("GET\t/kill9/data/sub/s\tbytes=0-9\n")
        self.assertEqual(reqlog.object_gets(mark), [("sub/s", 0, 10)])

    def test_refetch_check(self):
        with open(state.REQLOG, "w") as f:
            f.write("GET\t/kill9/data/big\tbytes=0-2097151\n")
        present = {"big": [(state.M, 2 * state.M)]}
        ok, note, probs = reqlog.refetch_check(0, present, None, "rerun")
        self.assertFalse(ok)
        self.assertIn("asked S3 again for 1048576 bytes", probs[0])
        ok, _, probs = reqlog.refetch_check(0, {"big": [(2 * state.M, 3 * state.M)]}, 2 * state.M, "rerun")
        self.assertTrue(ok, probs)
        ok, _, probs = reqlog.refetch_check(0, {}, state.M, "rerun")
        self.assertFalse(ok)
        self.assertIn("only 1048576 were missing", probs[0])

    def test_present_ranges(self):
        snap = {"blocks": {"big": {0: 1, 9: 2}, "gone": {0: 3}}}
        self.assertEqual(reqlog.cache_present(snap), {"big": [(0, state.M), (9 * state.M, 10 * state.M)]})
        d = {"files": {"sub/s": (1, 2)}, "parts": {"big": ({0, 2}, 4 * state.M)}}
        self.assertEqual(reqlog.download_present(d, None),
                         {"sub/s": [(0, 1000)], "big": [(0, 4 * state.M), (8 * state.M, 10 * state.M)]})

    def test_monotonic_checks(self):
        a = {"files": {"sub/s": (5, 6)}, "parts": {"big": ({0, 1}, state.M)}}
        self.assertEqual(snapshots.download_monotonic(a, {"files": {"sub/s": (5, 6)}, "parts": {"big": ({0, 1, 2}, state.M)}}), [])
        probs = snapshots.download_monotonic(a, {"files": {"sub/s": (7, 6)}, "parts": {"big": ({1}, state.M)}})
        self.assertEqual(len(probs), 2)
        ca = {"blocks": {"big": {0: 11, 1: 12}}, "gens": {"big": 1}}
        self.assertEqual(snapshots.cache_monotonic(ca, {"blocks": {"big": {0: 11, 1: 12, 2: 13}}, "gens": {"big": 1}}, "x"), [])
        self.assertEqual(snapshots.cache_monotonic(ca, {"blocks": {"big": {0: 11, 1: 99}}, "gens": {"big": 1}}, "x"),
                         ["x: 1 block(s) recorded before are gone or changed crc"])
        self.assertIn("discarded", snapshots.cache_monotonic(ca, {"blocks": {}, "gens": {"big": 2}}, "x")[0])

    def test_dataset_manifest_matches_files(self):
        out = []

        class W:
            write = out.append
        d = os.path.join(self.tmp.name, "src")
        k9main.OBJECTS[:] , saved = [("a", 3), ("sub/b", 0)], list(k9main.OBJECTS)
        try:
            k9main.MULTIPART, mp = ("sub/m", 5), k9main.MULTIPART
            k9main.dataset(d, 1, W)
        finally:
            k9main.OBJECTS[:] = saved
            k9main.MULTIPART = mp
        rows = [l.rstrip("\n").split("\t") for l in out]
        self.assertEqual([r[0] for r in rows], ["a", "sub/b", "sub/m"])
        self.assertEqual(rows[2][3], os.path.join(d, "mp", "m"))
        for rel, size, sha, path in rows:
            self.assertEqual(os.path.getsize(path), int(size))
        r = random.Random(1)
        with open(rows[0][3], "rb") as f:
            self.assertEqual(f.read(), r.randbytes(3))

    def test_the_rerun_mark_waits_for_requests_a_dead_client_left_in_the_proxy(self):
        """A killed run's request still unread in the proxy's socket is logged before the mark."""
        open(state.REQLOG, "w").close()
        ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(8)
        port = ls.getsockname()[1]
        saved, state.ENDPOINT = state.ENDPOINT, "http://127.0.0.1:%d" % port
        def slow_proxy():  # a loaded proxy: it gets to the connection late, logs, then closes it
            c, _ = ls.accept(); time.sleep(0.5)
            d = c.recv(1 << 16)
            with open(state.REQLOG, "a") as f: f.write("GET\t/kill9/data/big\t%s\n" % d.decode().split(": ")[1].strip())
            c.close()
        t = threading.Thread(target=slow_proxy); t.start()
        try:
            cl = socket.create_connection(("127.0.0.1", port))
            cl.sendall(b"Range: bytes=0-99\r\n\r\n"); cl.close()  # the killed run's worker, gone
            mark, probs = reqlog.settled_mark(timeout=10)
            self.assertEqual(probs, [])
            self.assertEqual(reqlog.object_gets(0), [("big", 0, 100)])
            self.assertEqual(reqlog.object_gets(mark), [], "the dead client's GET counted for the next run")
            self.assertEqual(reqlog.open_conns(port), 0)
        finally:
            t.join(); ls.close(); state.ENDPOINT = saved

    def test_workers_of_a_killed_coordinator_are_found_when_orphaned(self):
        """A worker the first look missed (here: every one, orphaned by then) still counts as the
        killed run's, so reap_workers waits for it (and kills it after the grace)."""
        soak = os.path.join(self.tmp.name, "soak"); shutil.copy("/bin/sh", soak)
        saved, state.SOAK = state.SOAK, soak
        coord = subprocess.Popen([soak, "-c", '"$0" -c "while :; do sleep 0.05; done" __worker & wait', soak])
        try:
            for _ in range(200):
                ws = procs.workers_of(coord.pid)
                if ws: break
                time.sleep(0.02)
            self.assertEqual(len(ws), 1)
            start = procs.stat_of(coord.pid)[2]
            procs.kill9(coord.pid); coord.wait()
            self.assertEqual(procs.workers_of(coord.pid), [], "orphaned: no longer the coordinator's child")
            self.assertEqual(procs.strays(coord.pid, start), ws)
            probs = procs.reap_workers([], grace=0.3, pid=coord.pid, start=start)
            self.assertIn("1 worker(s) still alive", probs[0])
            for _ in range(100):
                if not procs.alive(*ws[0]): break
                time.sleep(0.02)
            self.assertEqual(procs.strays(coord.pid, start), [])
        finally:
            for w, _ in procs.strays(coord.pid, 0): procs.kill9(w)
            state.SOAK = saved


if __name__ == "__main__":
    unittest.main()
