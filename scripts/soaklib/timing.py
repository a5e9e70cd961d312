"""Wall and CPU seconds of one command, measured the same way for every tool."""
import os
import subprocess
import time
from dataclasses import dataclass


@dataclass
class Timed:
    rc: int
    wall: float   # seconds from start to exit
    user: float   # CPU seconds of the command and every child it waited for
    sys: float

    @property
    def cpu(self):
        return self.user + self.sys


def run_timed(cmd, env=None, stdout=None, stderr=None, cwd=None, timeout=None):
    """Runs cmd to the end and returns its Timed (rc -9 when it was killed at the timeout). CPU
    seconds come from wait4's rusage, so they count the command's waited-for descendants too, as
    /usr/bin/time does."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=cwd)
    deadline = None if timeout is None else t0 + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG if deadline else 0)
        if pid:
            break
        if time.monotonic() >= deadline:
            p.kill()
            deadline = None
            continue
        time.sleep(0.01)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return Timed(p.returncode, wall, ru.ru_utime, ru.ru_stime)


class Stopwatch:
    """with Stopwatch() as sw: ...; sw.seconds"""

    def __enter__(self):
        self.t0 = time.monotonic()
        self.seconds = None
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.t0
        return False
