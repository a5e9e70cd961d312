import os
import subprocess
import sys
import tempfile
import time
import unittest

from soaklib import rss
from soaklib.timing import Stopwatch, run_timed


class TimingTests(unittest.TestCase):
    def test_exit_code_and_cpu_of_children(self):
        t = run_timed([sys.executable, "-c", "import subprocess,sys; subprocess.run([sys.executable, '-c', "
                       "'s=0\\nfor i in range(3000000): s+=i']); sys.exit(3)"])
        self.assertEqual(t.rc, 3)
        self.assertGreater(t.cpu, 0.05)  # the grandchild's CPU counts (it was waited for)
        self.assertGreaterEqual(t.wall, 0)

    def test_timeout_kills(self):
        t = run_timed(["sleep", "30"], timeout=0.2)
        self.assertEqual(t.rc, -9)
        self.assertLess(t.wall, 10)

    def test_stopwatch(self):
        with Stopwatch() as sw:
            pass
        self.assertGreaterEqual(sw.seconds, 0)


class RssTests(unittest.TestCase):
    def test_samples_a_tree(self):
        p = subprocess.Popen(["sh", "-c", "sleep 5 & sleep 5 & wait"])
        try:
            deadline = time.monotonic() + 5
            while True:
                total, hwm, _ = rss.sample(p.pid)
                if total > 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertGreater(total, 0)
            self.assertGreater(hwm, 0)
            self.assertEqual(rss.sample(p.pid, only="no-such-name")[0], 0)
        finally:
            p.kill()
            p.wait()

    def test_main_writes_the_peaks(self):
        p = subprocess.Popen(["sh", "-c", "sleep 0.3 & wait"])
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "rss.out")
            p.wait()
            self.assertEqual(rss.main([str(p.pid), out, "20"]), 0)
            with open(out) as f:
                self.assertEqual(f.read().split(), ["0", "0", "0", "0"])  # gone before the first sample


if __name__ == "__main__":
    unittest.main()
