"""The private SeaweedFS of scripts/seaweed, from Python: start, stop, and its environment.

Decision: this wraps scripts/seaweed instead of re-implementing it, so the tests, the suites and the
benchmarks all start the server the same way (ports, keys, telemetry off, loopback only)."""
import os
import subprocess

from .env import parse_exports, require_loopback

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEAWEED = os.path.join(SCRIPTS, "seaweed")


class SeaweedError(RuntimeError):
    pass


class Seaweed:
    """One instance: its data dir, S3 port and port base (None: weed's default ports)."""

    def __init__(self, datadir, s3_port=None, port_base=None, volume_mb=None, script=SEAWEED):
        self.datadir, self.s3_port, self.port_base, self.volume_mb = datadir, s3_port, port_base, volume_mb
        self.script = script

    def _env(self, **extra):
        e = dict(os.environ)
        if self.s3_port is not None:
            e["S3_PORT"] = str(self.s3_port)
        if self.port_base is not None:
            e["SEAWEED_PORT_BASE"] = str(self.port_base)
        if self.volume_mb is not None:
            e["SEAWEED_VOLUME_MB"] = str(self.volume_mb)
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def start(self):
        """Starts it (a no-op when running) and returns its environment (see env())."""
        r = subprocess.run([self.script, "start", self.datadir], env=self._env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise SeaweedError(f"SeaweedFS did not start (see {self.datadir}/weed.log): "
                               + (r.stderr.strip().splitlines() or [""])[-1])
        return self.env()

    def env(self):
        """AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, SOAK_TEST_ENDPOINT, … of the instance."""
        r = subprocess.run([self.script, "env", self.datadir], env=self._env(), capture_output=True, text=True)
        if r.returncode != 0:
            raise SeaweedError("scripts/seaweed env failed: " + r.stderr.strip())
        e = parse_exports(r.stdout)
        require_loopback(e["SOAK_TEST_ENDPOINT"])
        return e

    def stop(self, fast=True):
        args = [self.script, "stop"] + (["--fast"] if fast else []) + [self.datadir]
        subprocess.run(args, env=self._env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
