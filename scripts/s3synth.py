#!/usr/bin/env python3
"""scripts/s3synth.py — a synthetic, read-only S3 bucket for soak's tests (issue 21, workload 6).
Python 3 standard library only.

Serves one path-style bucket (--bucket, default `synth`) on 127.0.0.1 whose keys are generated,
never stored:
    dNNNN/fNNNNNN.bin   --dirs directories of --files-per-dir files each (default 1000 x 1000)
    flat/fNNNNNN.bin    one flat directory of --flat files (default 100,000)
Digit widths are fixed (at least 4 for directories, 6 for files) so key order is index order and a
key's position is arithmetic: no key list is ever held, a listing page costs O(page) memory and
O(page x log keys) time (every seek is a binary search over the index -> key function).

Every object is a pure function of (--seed, key):
- size: 1-64 KiB, from a hash of the key;
- body: SHAKE-256 of seed and key, stretched to the size (same bytes every time, range slices agree);
- Last-Modified: a fixed day in 2024 plus a per-key offset;
- ETag: with `--etag key` (default) the MD5 of seed and key written as a one-part multipart ETag
  ("<hex>-1"). It is NOT the body's MD5: computing bodies to list 1.1M keys would cost far more
  than the listing itself, and the multipart form tells clients (soak included) not to check the
  body against it. `--etag md5` gives the true MD5 of the body instead (cheap for small
  configurations; soak then verifies bodies against it).

S3 it answers:
- ListObjectsV2 (GET /BUCKET?list-type=2): prefix, delimiter (CommonPrefixes), max-keys (capped at
  1000), continuation-token (opaque; 400 InvalidArgument if not ours), start-after,
  encoding-type=url, fetch-owner is ignored;
- HEAD / GET of a key: whole, or `Range: bytes=a-b` / `a-` / `-n` (206 with Content-Range, 416
  InvalidRange past the end); If-Match -> 412, If-None-Match -> 304;
- HEAD bucket, GET ?location, GET / (ListBuckets); anything else that reads is 404 NoSuchKey /
  NoSuchBucket, anything that writes is 405 MethodNotAllowed.
Requests are NOT authenticated: this is a test fixture on loopback. SigV4 headers (Authorization,
X-Amz-Date, X-Amz-Content-Sha256, X-Amz-Security-Token) and presigned query parameters are accepted
and ignored, so any client configured with any keys works.

Usage: s3synth.py [--port 0] [--bucket synth] [--dirs 1000] [--files-per-dir 1000] [--flat 100000]
                  [--seed 1] [--etag key|md5]
       s3synth.py --check     self-check on a small configuration (exit 0 ok, 1 failed)
Prints `PORT=nnnn` on stdout once it listens. Exit 0 on SIGTERM/SIGINT, 2 on bad arguments.
"""
import argparse
import base64
import bisect
import datetime
import email.utils
import hashlib
import http.server
import signal
import sys
import threading
import urllib.parse
from xml.sax.saxutils import escape

MAX_KEYS = 1000             # S3's own page cap; larger max-keys values are clamped to it, as S3 does
MIN_SIZE = 1024             # smallest body: 1 KiB
MAX_SIZE = 64 * 1024        # largest body: 64 KiB, small enough to build whole and slice for ranges
DIR_WIDTH = 4               # minimum digits of dNNNN (more when --dirs needs them)
FILE_WIDTH = 6              # minimum digits of fNNNNNN (more when a directory needs them)
FLAT_DIR = "flat/"
TOKEN_TAG = "synth1:"       # continuation tokens are base64 of this tag and the next index
EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


class KeySpace:
    """The generated keys in order: key(i) is monotone in i, so seeks are binary searches."""

    def __init__(self, dirs, per_dir, flat, seed, etag_mode="key"):
        self.dirs, self.per_dir, self.flat, self.seed, self.etag_mode = dirs, per_dir, flat, seed, etag_mode
        self.dw = max(DIR_WIDTH, len(str(max(dirs - 1, 0))))
        self.fw = max(FILE_WIDTH, len(str(max(per_dir - 1, flat - 1, 0))))
        self.n_dir_keys = dirs * per_dir
        self.total = self.n_dir_keys + flat
        self.seed_bytes = str(seed).encode() + b"\0"

    def __len__(self):
        return self.total

    def __getitem__(self, i):  # lets bisect search the virtual sorted list
        return self.key(i)

    def key(self, i):
        if i < self.n_dir_keys:
            d, f = divmod(i, self.per_dir)
            return f"d{d:0{self.dw}d}/f{f:0{self.fw}d}.bin"
        return f"{FLAT_DIR}f{i - self.n_dir_keys:0{self.fw}d}.bin"

    def index(self, key):
        """The index of `key`, or None if it is not one of ours (checked by regenerating it)."""
        try:
            if key.startswith(FLAT_DIR):
                i = self.n_dir_keys + int(key[len(FLAT_DIR) + 1:-4])
            elif key.startswith("d") and "/" in key:
                d, f = key.split("/", 1)
                i = int(d[1:]) * self.per_dir + int(f[1:-4])
                if int(f[1:-4]) >= self.per_dir:
                    return None
            else:
                return None
        except ValueError:
            return None
        return i if 0 <= i < self.total and self.key(i) == key else None

    def lower_bound(self, s):
        """First index whose key is >= s."""
        return bisect.bisect_left(self, s)

    def upper_bound(self, s):
        """First index whose key is > s."""
        return bisect.bisect_right(self, s)

    # ---- objects
    def _digest(self, key):
        return hashlib.md5(self.seed_bytes + key.encode()).digest()

    def size(self, key):
        h = int.from_bytes(self._digest(key)[:8], "big")
        return MIN_SIZE + h % (MAX_SIZE - MIN_SIZE + 1)

    def body(self, key):
        return hashlib.shake_256(b"body\0" + self.seed_bytes + key.encode()).digest(self.size(key))

    def etag(self, key):
        if self.etag_mode == "md5":
            return '"' + hashlib.md5(self.body(key)).hexdigest() + '"'
        return '"' + self._digest(key).hex() + '-1"'

    def mtime(self, key):
        h = int.from_bytes(self._digest(key)[8:], "big")
        return EPOCH + datetime.timedelta(seconds=h % (365 * 86400))


def successor(prefix):
    """The smallest string greater than every string starting with `prefix` (prefix non-empty)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def list_page(ks, prefix="", delimiter="", max_keys=MAX_KEYS, start_after="", token=None):
    """(contents [(key, index)], common_prefixes [str], next_index or None). Keys with `prefix` are
    contiguous, so the page walks forward from the seek point and stops at the first key without it;
    a common prefix is emitted once and skipped over with one more seek."""
    if token is not None:
        i = token
    else:
        i = ks.lower_bound(prefix)
        if start_after:
            i = max(i, ks.upper_bound(start_after))
    contents, prefixes = [], []
    while i < ks.total and len(contents) + len(prefixes) < max_keys:
        k = ks.key(i)
        if not k.startswith(prefix):
            return contents, prefixes, None
        rest = k[len(prefix):]
        j = rest.find(delimiter) if delimiter else -1
        if j >= 0:
            cp = prefix + rest[:j + len(delimiter)]
            prefixes.append(cp)
            i = ks.lower_bound(successor(cp))
        else:
            contents.append((k, i))
            i += 1
    if i < ks.total and ks.key(i).startswith(prefix) and max_keys > 0:
        return contents, prefixes, i
    return contents, prefixes, None


def encode_token(i):
    return base64.urlsafe_b64encode(f"{TOKEN_TAG}{i}".encode()).decode()


def decode_token(t):
    try:
        s = base64.urlsafe_b64decode(t.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not s.startswith(TOKEN_TAG) or not s[len(TOKEN_TAG):].isdigit():
        return None
    return int(s[len(TOKEN_TAG):])


def http_date(t):
    return email.utils.format_datetime(t, usegmt=True)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_range(header, size):
    """(start, end) inclusive, "bad" for 416, None to serve the whole body (unparsable: S3 ignores it)."""
    if not header.startswith("bytes=") or "," in header:
        return None
    a, _, b = header[6:].strip().partition("-")
    try:
        if a == "":
            n = int(b)
            if n <= 0:
                return "bad"
            return max(0, size - n), size - 1
        start = int(a)
        end = int(b) if b else size - 1
    except ValueError:
        return None
    if start >= size:
        return "bad"
    if end < start:
        return None
    return start, min(end, size - 1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    ks = None
    bucket = "synth"

    def log_message(self, fmt, *a):  # quiet: a million GETs would drown the log
        pass

    def reply(self, status, body=b"", ctype="application/xml", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-request-id", "synth")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def s3_error(self, status, code, message, extra=()):
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{escape(message)}</Message><RequestId>synth</RequestId></Error>").encode()
        self.reply(status, body, extra=extra)

    def drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def do_PUT(self):
        self.drain()
        self.s3_error(405, "MethodNotAllowed", "s3synth is read-only")

    do_POST = do_DELETE = do_PATCH = do_PUT

    def do_GET(self):
        self.drain()
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        path = urllib.parse.unquote(url.path)
        bucket, _, key = path.lstrip("/").partition("/")
        if bucket == "":
            return self.list_buckets()
        if bucket != self.bucket:
            return self.s3_error(404, "NoSuchBucket", "The specified bucket does not exist")
        if key == "":
            if self.command == "HEAD":
                return self.reply(200, extra=[("x-amz-bucket-region", "us-east-1")])
            if "location" in q:
                return self.reply(200, b'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint '
                                       b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></LocationConstraint>')
            if q.get("list-type") == "2":
                return self.list_v2(q)
            return self.s3_error(501, "NotImplemented", "s3synth answers ListObjectsV2 (list-type=2) only")
        self.get_object(key)

    do_HEAD = do_GET

    def list_buckets(self):
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult '
                f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>synth</ID></Owner><Buckets>'
                f"<Bucket><Name>{escape(self.bucket)}</Name><CreationDate>{iso(EPOCH)}</CreationDate></Bucket>"
                f"</Buckets></ListAllMyBucketsResult>").encode()
        self.reply(200, body)

    def list_v2(self, q):
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        start_after, raw_token = q.get("start-after", ""), q.get("continuation-token")
        url = q.get("encoding-type") == "url"
        if "encoding-type" in q and not url:
            return self.s3_error(400, "InvalidArgument", "Invalid Encoding Method specified in Request")
        try:
            max_keys = int(q.get("max-keys", MAX_KEYS))
        except ValueError:
            return self.s3_error(400, "InvalidArgument", "Provided max-keys not an integer or within integer range")
        if max_keys < 0:
            return self.s3_error(400, "InvalidArgument", "max-keys must be >= 0")
        max_keys = min(max_keys, MAX_KEYS)
        token = None
        if raw_token is not None:
            token = decode_token(raw_token)
            if token is None or token > self.ks.total:
                return self.s3_error(400, "InvalidArgument", "The continuation token provided is incorrect")
        contents, prefixes, nxt = list_page(self.ks, prefix, delimiter, max_keys, start_after, token)
        enc = (lambda s: urllib.parse.quote_plus(s, safe="/")) if url else (lambda s: s)
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
               f"<Name>{escape(self.bucket)}</Name><Prefix>{escape(enc(prefix))}</Prefix>"]
        if delimiter:
            out.append(f"<Delimiter>{escape(enc(delimiter))}</Delimiter>")
        if start_after:
            out.append(f"<StartAfter>{escape(enc(start_after))}</StartAfter>")
        if raw_token is not None:
            out.append(f"<ContinuationToken>{escape(raw_token)}</ContinuationToken>")
        out.append(f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>")
        if url:
            out.append("<EncodingType>url</EncodingType>")
        out.append(f"<IsTruncated>{'true' if nxt is not None else 'false'}</IsTruncated>")
        if nxt is not None:
            out.append(f"<NextContinuationToken>{encode_token(nxt)}</NextContinuationToken>")
        ks = self.ks
        for k, _ in contents:
            out.append(f"<Contents><Key>{escape(enc(k))}</Key><LastModified>{iso(ks.mtime(k))}</LastModified>"
                       f"<ETag>{escape(ks.etag(k))}</ETag><Size>{ks.size(k)}</Size>"
                       "<StorageClass>STANDARD</StorageClass></Contents>")
        for p in prefixes:
            out.append(f"<CommonPrefixes><Prefix>{escape(enc(p))}</Prefix></CommonPrefixes>")
        out.append("</ListBucketResult>")
        self.reply(200, "".join(out).encode())

    def get_object(self, key):
        ks = self.ks
        if ks.index(key) is None:
            return self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
        size, etag, mtime = ks.size(key), ks.etag(key), ks.mtime(key)
        meta = [("ETag", etag), ("Last-Modified", http_date(mtime)), ("Accept-Ranges", "bytes")]
        im, inm = self.headers.get("If-Match"), self.headers.get("If-None-Match")
        if im is not None and im.strip() != "*" and etag not in [t.strip() for t in im.split(",")]:
            return self.s3_error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
        if inm is not None and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
            self.send_response(304)
            for k, v in meta:
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rng = parse_range(self.headers.get("Range", ""), size) if self.headers.get("Range") else None
        if rng == "bad":
            return self.s3_error(416, "InvalidRange", "The requested range is not satisfiable",
                                 extra=[("Content-Range", f"bytes */{size}")])
        body = ks.body(key) if self.command == "GET" else b""
        if rng is None:
            self.send_response(200)
            length = size
        else:
            a, b = rng
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {a}-{b}/{size}")
            length = b - a + 1
            body = body[a:b + 1]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("x-amz-request-id", "synth")
        for k, v in meta:
            self.send_header(k, v)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)


def serve(ks, bucket, port):
    Handler.ks, Handler.bucket = ks, bucket
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main(argv=None):
    p = argparse.ArgumentParser(description="synthetic read-only S3 bucket for tests")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--bucket", default="synth")
    p.add_argument("--dirs", type=int, default=1000)
    p.add_argument("--files-per-dir", type=int, default=1000)
    p.add_argument("--flat", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--etag", choices=["key", "md5"], default="key")
    p.add_argument("--check", action="store_true", help="run the self-check on a small configuration and exit")
    args = p.parse_args(argv)
    if args.check:
        import unittest
        import os
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, here)
        suite = unittest.defaultTestLoader.loadTestsFromName("soaklib.tests.test_s3synth")
        return 0 if unittest.TextTestRunner(verbosity=1).run(suite).wasSuccessful() else 1
    if min(args.dirs, args.files_per_dir, args.flat) < 0 or not 0 <= args.port < 65536:
        print("s3synth: --dirs, --files-per-dir, --flat must be >= 0 and --port 0-65535", file=sys.stderr)
        return 2
    if not args.bucket or "/" in args.bucket:
        print("s3synth: --bucket must be a non-empty name without '/'", file=sys.stderr)
        return 2
    ks = KeySpace(args.dirs, args.files_per_dir, args.flat, args.seed, args.etag)
    server = serve(ks, args.bucket, args.port)
    print(f"PORT={server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
