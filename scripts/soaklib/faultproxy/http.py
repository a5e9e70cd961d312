"""The fault proxy's HTTP pieces: the fault names, request heads, headers, ranges, the stats file."""
import hashlib
import json
import os
from xml.sax.saxutils import escape as xml_escape


ALL_FAULTS = ["500", "503slowdown", "reset-before", "reset-mid", "truncate", "stall", "slow",
              "bad-content-range", "etag-change", "hostile-keys", "hostile-ctl"]
REQUEST_FAULTS = {"500", "503slowdown", "reset-before"}
BODY_FAULTS = {"reset-mid", "truncate", "stall", "slow"}
CHUNK = 64 * 1024
HOSTILE_BODY = b"hostile!!\n"
HOSTILE_ETAG = hashlib.md5(HOSTILE_BODY).hexdigest()
BCR_VARIANTS = ["shift", "shift-both", "wrong-total", "end-short"]
STALL_VARIANTS = ["body", "head"]


def hostile_relative_keys(ctl):
    if ctl:
        return ["ctl\x01name"]
    long_path = "/".join(["p%03d" % i + "q" * 246 for i in range(18)])  # 18 x 250 B + '/' > 4096
    return ["../x", "a/../../b", "/abs", "c/" + "L" * 300 + "/f", long_path,
            "nl\nname", "tab\tname", "./dot", "d/./e", "e/..", "..", ".", "f//g", ".soak-partial/p"]


def xml_key(k):
    # Escape like S3 does: &, <, > and control characters as character references.
    out = []
    for ch in xml_escape(k):
        o = ord(ch)
        out.append("&#%d;" % o if o < 0x20 or o == 0x7F else ch)
    return "".join(out)


class Stats:
    def __init__(self, path, args):
        self.path = path
        self.data = {
            "seed": args.seed, "rate": args.rate, "faults_enabled": sorted(args.faults),
            "requests": {"total": 0, "list": 0, "get": 0, "head": 0, "other": 0},
            "injected": {f: 0 for f in sorted(args.faults)},
            "variants": {},
            "stall": {"client_aborted": 0, "timed_out": 0, "seconds_to_abort": []},
            "hostile_served": {"GET": 0, "HEAD": 0},
            "hostile_listings": 0,
            "upstream_errors": 0,
            "client_errors": 0,
        }
        self.dirty = False

    def bump(self, *path, n=1):
        d = self.data
        for p in path[:-1]:
            d = d.setdefault(p, {})
        d[path[-1]] = d.get(path[-1], 0) + n
        self.dirty = True

    def write(self, force=False):
        if not self.path or not (self.dirty or force):
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, self.path)
        self.dirty = False


class Request:
    __slots__ = ("method", "target", "version", "headers", "raw", "path", "query", "bucket", "key", "seq")

    def header(self, name):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return None


def parse_head(raw):
    """Start line + headers of a request or response (bytes ending in CRLFCRLF)."""
    lines = raw.split(b"\r\n")
    start = lines[0].decode("latin-1")
    headers = []
    for ln in lines[1:]:
        if not ln:
            continue
        k, _, v = ln.decode("latin-1").partition(":")
        headers.append((k.strip(), v.strip()))
    return start, headers


def get_header(headers, name):
    n = name.lower()
    for k, v in headers:
        if k.lower() == n:
            return v
    return None


def build_head(start, headers):
    return (start + "\r\n" + "".join("%s: %s\r\n" % (k, v) for k, v in headers) + "\r\n").encode("latin-1")


def replace_headers(headers, repl, drop=()):
    low = {k.lower(): v for k, v in repl.items()}
    out, seen = [], set()
    for k, v in headers:
        kl = k.lower()
        if kl in drop:
            continue
        if kl in low:
            if kl not in seen:
                out.append((k, low[kl]))
                seen.add(kl)
            continue
        out.append((k, v))
    for k, v in repl.items():
        if k.lower() not in seen:
            out.append((k, v))
    return out


def parse_range(v):
    if not v or not v.startswith("bytes="):
        return None
    a, _, b = v[6:].partition("-")
    try:
        return int(a), (int(b) if b else None)
    except ValueError:
        return None
