"""The kill -9 suite's settings and dataset, shared by its modules (set once by load()).

scripts/test-kill9 passes them in the environment: SOAK_BIN, K9_WORK, K9_BUCKET, K9_PREFIX,
SOAK_TEST_ENDPOINT (SeaweedFS), K9_SEED, K9_SPEED, K9_TIMEOUT, K9_TRIALS; the manifest is
K9_WORK/manifest.tsv (rel, size, sha256, local path)."""
import os
import sys

from ..env import require_loopback
from ..verify import file_digest, read_manifest_tsv

M = 1 << 20
ROUND = 50000  # the summaries print MB with one decimal

E = os.environ
SOAK = WORK = BUCKET = PREFIX = UPSTREAM = SRC = REQLOG = None
SEED, SPEED, TIMEOUT = 1, "36", 60.0
ENDPOINT = None  # the request-logging proxy in front of UPSTREAM (every soak run goes through it)
MAN = {}  # rel -> (size, sha256, local path)
TOTAL = 0
WORKER_LINGER = 0.0  # longest a worker outlived its killed coordinator


def load(env=None):
    """Reads the settings and the manifest from env (default os.environ)."""
    global E, SOAK, WORK, BUCKET, PREFIX, UPSTREAM, SEED, SPEED, TIMEOUT, REQLOG, MAN, TOTAL, SRC
    E = os.environ if env is None else env
    SOAK, WORK, BUCKET, PREFIX = E["SOAK_BIN"], E["K9_WORK"], E["K9_BUCKET"], E["K9_PREFIX"]
    UPSTREAM = require_loopback(E["SOAK_TEST_ENDPOINT"])
    SEED, SPEED, TIMEOUT = int(E["K9_SEED"]), E["K9_SPEED"], float(E["K9_TIMEOUT"])
    REQLOG = os.path.join(WORK, "requests.log")
    MAN = read_manifest_tsv(os.path.join(WORK, "manifest.tsv"))
    TOTAL = sum(v[0] for v in MAN.values())
    SRC = "s3://%s/%s" % (BUCKET, PREFIX)


def log(msg):
    sys.stderr.write(msg + "\n"); sys.stderr.flush()


def sha_file(p, size):
    """sha256 of p's first size bytes; None when p is shorter."""
    return file_digest(p, "sha256", size)


def src_range(rel, off, n):
    with open(MAN[rel][2], "rb") as f:
        f.seek(off); return f.read(n)
