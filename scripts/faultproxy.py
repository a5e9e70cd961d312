#!/usr/bin/env python3
"""scripts/faultproxy.py — a fault-injecting HTTP/1.1 reverse proxy in front of an S3 server,
for soak's reliability tests (scripts/test-faults). Python 3 standard library only.

Usage:
  faultproxy.py --upstream http://127.0.0.1:8351 [--listen-port 0] [--seed 1] [--rate 0.2]
                [--faults 500,503slowdown,...] [--stats FILE] [--max-per-request 2]
                [--max-per-key 0] [--stall-seconds 20] [--slow-bps 65536]
                [--bcr-variants shift,shift-both,wrong-total,end-short] [--stall-variants head,body]

Prints `PORT=nnnn` as the first line on stdout once it listens (--listen-port 0 picks a free
port). Every request is forwarded byte for byte (request line, Host, Range, If-Match, x-amz-*,
Authorization: SigV4 signatures stay valid); responses are streamed through in 64 KiB chunks,
so memory stays bounded whatever the object size (only ListObjectsV2 bodies are buffered when
hostile-keys rewrites them). One upstream connection per client connection, reused.

Fault types (--faults, comma separated; `all` = every one):
  500                reply 500 InternalError (S3 XML body) without asking upstream
  503slowdown        reply 503 SlowDown with Retry-After: 1
  reset-before       RST the client connection (SO_LINGER 0) before any response byte
  reset-mid          send headers and part of the body, then RST              (object GETs)
  truncate           send headers (original Content-Length) and part of the body, then FIN
  stall              send nothing for --stall-seconds, then close; counts whether (and after
                     how long) the client gave up first                      (object GETs);
                     variants, taken in turn (--stall-variants, in that order): body (headers
                     and part of the body first: a gap between bytes), head (not even the
                     status line: the first byte); the order of stalls decides which gets which
  slow               send the whole body at --slow-bps                        (object GETs)
  bad-content-range  206 with a Content-Range that is not the requested one (ranged GETs);
                     variants, chosen by the seed: shift (start+1, body = bytes start+1..end,
                     i.e. real data of the range it claims), shift-both (start+1..end+1),
                     wrong-total (size+1, correct body), end-short (end-1, one byte less)
  etag-change        412 PreconditionFailed for a GET carrying If-Match, at most once per key
  hostile-keys       every ListObjectsV2 page that is the last (IsTruncated false) gets extra
                     <Contents> with hostile keys (../x, a/../../b, /abs, a 300-byte component,
                     a >4096-byte path, \\n and \\t in keys, ./dot, d/./e, e/.., .., ., f//g,
                     .soak-partial/p), merged in byte order; GET/HEAD of those keys answer
                     10 bytes "hostile!!\\n" (Range and If-Match honoured). Not rate-governed.
  hostile-ctl        like hostile-keys but one key holding U+0001 as `&#1;` (what S3 sends
                     without encoding-type=url; not well-formed XML 1.0)

Which requests are eligible: 500/503slowdown/reset-before any request; reset-mid, truncate,
stall, slow object GETs answered 200/206 with a Content-Length body of >= 2 bytes;
bad-content-range ranged object GETs answered 206; etag-change object GETs with If-Match.
Decision: an eligible request is faulted when hash(seed, fault set, method, target, Range, n) < rate,
where n counts earlier identical requests; the fault type is picked by another hash of the same. So a
run reproduces regardless of how concurrent requests interleave. A (method, target, Range) is
faulted at most --max-per-request times (default 2), a (method, key) at most --max-per-key
times (0 = no limit), so a client with enough retries always finishes.

Output: one stderr line per injected fault; --stats FILE gets a JSON summary (counts per fault
type and variant, requests by kind, stall outcomes, hostile objects served), rewritten after
every fault and on SIGTERM/SIGINT. Exit status 0 on SIGTERM/SIGINT, 2 on bad arguments.
"""
import argparse
import asyncio
import hashlib
import html
import json
import os
import re
import signal
import socket
import struct
import sys
import time
import urllib.parse
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


class Proxy:
    def __init__(self, args):
        self.args = args
        u = urllib.parse.urlsplit(args.upstream)
        self.up_host, self.up_port = u.hostname, u.port or 80
        self.stats = Stats(args.stats, args)
        self.seq = 0
        self.occurrence = {}      # (method, target, range) -> requests seen
        self.faulted = {}         # (method, target, range) -> faults injected
        self.faulted_key = {}     # (method, path) -> faults injected
        self.etag_changed = set()  # paths already answered 412
        self.hostile = {}         # "/bucket/key" -> True, for GET/HEAD answers
        self.enabled = set(args.faults)

    # ---- decisions

    def h(self, *parts):
        # The enabled fault set is part of the hash, so each fault type hits different requests.
        d = hashlib.sha256(("\0".join(str(p) for p in (self.args.seed, ",".join(sorted(self.enabled))) + parts)).encode("utf-8", "surrogateescape")).digest()
        return int.from_bytes(d[:8], "big")

    def decide(self, req):
        """The fault for this request, or None. Body faults are decided here too and applied
        only if the response turns out to be eligible."""
        rng = req.header("Range") or ""
        ident = (req.method, req.target, rng)
        n = self.occurrence.get(ident, 0)
        self.occurrence[ident] = n + 1
        is_obj_get = req.method == "GET" and req.key is not None
        cands = [f for f in sorted(self.enabled) if f in REQUEST_FAULTS]
        if is_obj_get:
            cands += [f for f in sorted(self.enabled) if f in BODY_FAULTS]
            if rng and "bad-content-range" in self.enabled:
                cands.append("bad-content-range")
            if req.header("If-Match") and "etag-change" in self.enabled and req.path not in self.etag_changed:
                cands.append("etag-change")
        if not cands:
            return None
        if self.faulted.get(ident, 0) >= self.args.max_per_request:
            return None
        kid = (req.method, req.path)
        if self.args.max_per_key and self.faulted_key.get(kid, 0) >= self.args.max_per_key:
            return None
        x = self.h("p", req.method, req.target, rng, n)
        if x / 2.0 ** 64 >= self.args.rate:
            return None
        return cands[self.h("t", req.method, req.target, rng, n) % len(cands)]

    def record(self, req, fault, detail=""):
        rng = req.header("Range") or ""
        ident = (req.method, req.target, rng)
        self.faulted[ident] = self.faulted.get(ident, 0) + 1
        kid = (req.method, req.path)
        self.faulted_key[kid] = self.faulted_key.get(kid, 0) + 1
        self.stats.bump("injected", fault)
        if detail:
            self.stats.bump("variants", fault + ":" + detail)
        print("faultproxy: #%d %s %s %s%s%s" % (req.seq, fault, req.method, req.target[:200],
                                                 (" Range:" + rng) if rng else "", (" " + detail) if detail else ""),
              file=sys.stderr, flush=True)
        self.stats.write()

    # ---- connection handling

    async def handle_client(self, creader, cwriter):
        up = None  # (reader, writer)
        try:
            while True:
                req = await self.read_request(creader)
                if req is None:
                    break
                self.seq += 1
                req.seq = self.seq
                self.stats.bump("requests", "total")
                if req.key is None and "list-type" in req.query and req.method == "GET":
                    self.stats.bump("requests", "list")
                elif req.method in ("GET", "HEAD"):
                    self.stats.bump("requests", req.method.lower())
                else:
                    self.stats.bump("requests", "other")
                keep, up = await self.serve(req, creader, cwriter, up)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            self.stats.bump("client_errors")
        finally:
            for w in ([cwriter] + ([up[1]] if up else [])):
                try:
                    w.close()
                except Exception:
                    pass

    async def read_request(self, r):
        try:
            raw = await r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        except asyncio.LimitOverrunError:
            return None
        start, headers = parse_head(raw[:-4])
        parts = start.split(" ")
        if len(parts) != 3:
            return None
        req = Request()
        req.method, req.target, req.version = parts
        req.headers = headers
        req.raw = raw
        path, _, query = req.target.partition("?")
        req.path = urllib.parse.unquote(path, errors="surrogateescape")
        req.query = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        segs = req.path.lstrip("/").split("/", 1)
        req.bucket = segs[0]
        req.key = segs[1] if len(segs) == 2 and segs[1] != "" else None
        return req

    async def upstream(self, up):
        if up is not None:
            return up
        return await asyncio.open_connection(self.up_host, self.up_port, limit=1 << 20)

    def close_up(self, up):
        if up:
            try:
                up[1].close()
            except Exception:
                pass
        return None

    async def send_simple(self, w, req, status, reason, code, message, extra=()):
        body = b""
        if req.method != "HEAD":
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
                    '<Resource>%s</Resource><RequestId>faultproxy-%d</RequestId></Error>'
                    % (code, message, xml_escape(req.path), req.seq)).encode()
        headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body))),
                   ("x-amz-request-id", "faultproxy-%d" % req.seq)] + list(extra)
        w.write(build_head("HTTP/1.1 %d %s" % (status, reason), headers) + body)
        await w.drain()

    @staticmethod
    async def rst(w, pause=0.05):
        try:
            await w.drain()
        except Exception:
            pass
        await asyncio.sleep(pause)  # let the kernel put the bytes on the wire before the RST
        sock = w.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        w.transport.abort()

    async def serve(self, req, creader, cw, up):
        """Handles one request. Returns (keep client connection, upstream connection or None)."""
        # Request bodies (never sent by soak, but forwarded for completeness).
        clen = int(req.header("Content-Length") or 0)
        if req.key is not None and req.method in ("GET", "HEAD") and req.path in self.hostile:
            await self.serve_hostile(req, cw)
            return True, up
        fault = self.decide(req) if clen == 0 else None

        if fault == "500":
            self.record(req, fault)
            await self.send_simple(cw, req, 500, "Internal Server Error", "InternalError",
                                   "We encountered an internal error. Please try again.")
            return True, up
        if fault == "503slowdown":
            self.record(req, fault)
            await self.send_simple(cw, req, 503, "Slow Down", "SlowDown", "Please reduce your request rate.",
                                   extra=[("Retry-After", "1")])
            return True, up
        if fault == "reset-before":
            self.record(req, fault)
            await self.rst(cw, pause=0)
            return False, up
        if fault == "etag-change":
            self.record(req, fault)
            self.etag_changed.add(req.path)
            await self.send_simple(cw, req, 412, "Precondition Failed", "PreconditionFailed",
                                   "At least one of the pre-conditions you specified did not hold")
            return True, up

        # Forward.
        for attempt in (0, 1):
            try:
                up = await self.upstream(up)
                ur, uw = up
                uw.write(req.raw)
                remaining = clen
                while remaining > 0:
                    data = await creader.read(min(CHUNK, remaining))
                    if not data:
                        raise ConnectionError("client body ended early")
                    uw.write(data)
                    remaining -= len(data)
                await uw.drain()
                rhead = await ur.readuntil(b"\r\n\r\n")
                break
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
                up = self.close_up(up)
                if attempt == 1 or clen:
                    self.stats.bump("upstream_errors")
                    print("faultproxy: upstream failed for %s %s: %r" % (req.method, req.target[:200], e),
                          file=sys.stderr, flush=True)
                    await self.send_simple(cw, req, 502, "Bad Gateway", "BadGateway", "faultproxy: upstream failed")
                    return False, up
        status_line, rheaders = parse_head(rhead[:-4])
        try:
            status = int(status_line.split(" ")[1])
        except (IndexError, ValueError):
            status = 0
        no_body = req.method == "HEAD" or status in (204, 304) or 100 <= status < 200
        chunked = "chunked" in (get_header(rheaders, "Transfer-Encoding") or "").lower()
        cl = get_header(rheaders, "Content-Length")
        length = None if (no_body or chunked or cl is None) else int(cl)
        up_close = "close" in (get_header(rheaders, "Connection") or "").lower()

        is_list = req.method == "GET" and req.key is None and "list-type" in req.query
        if is_list and status == 200 and ({"hostile-keys", "hostile-ctl"} & self.enabled):
            body = await self.read_body(ur, no_body, chunked, length)
            if up_close or length is None and not chunked:
                up = self.close_up(up)
            body = self.inject_hostile(req, body)
            hdrs = replace_headers(rheaders, {"Content-Length": str(len(body))}, drop=("transfer-encoding",))
            cw.write(build_head(status_line, hdrs) + body)
            await cw.drain()
            return True, up

        body_ok = req.method == "GET" and req.key is not None and status in (200, 206) and length is not None and length >= 2
        if fault in BODY_FAULTS and body_ok:
            return await self.body_fault(fault, req, cw, up, status_line, rheaders, length)
        if fault == "bad-content-range" and body_ok and status == 206:
            return await self.bad_content_range(req, cw, up, status_line, rheaders, length)

        # Plain pass-through, streamed.
        cw.write(rhead)
        await self.relay_body(ur, cw, no_body, chunked, length)
        if up_close or (not no_body and not chunked and length is None):
            up = self.close_up(up)
        return True, up

    async def read_body(self, ur, no_body, chunked, length):
        if no_body:
            return b""
        if length is not None:
            return await ur.readexactly(length)
        if not chunked:
            return await ur.read()
        out = bytearray()
        while True:
            line = await ur.readuntil(b"\r\n")
            n = int(line.split(b";")[0].strip(), 16)
            if n == 0:
                while (await ur.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(out)
            out += await ur.readexactly(n)
            await ur.readexactly(2)

    async def relay_body(self, ur, cw, no_body, chunked, length):
        if no_body:
            await cw.drain()
            return
        if length is not None:
            left = length
            while left > 0:
                data = await ur.read(min(CHUNK, left))
                if not data:
                    raise ConnectionError("upstream body ended early")
                cw.write(data)
                left -= len(data)
                await cw.drain()
            return
        if chunked:  # relay the chunked framing as is
            while True:
                line = await ur.readuntil(b"\r\n")
                cw.write(line)
                n = int(line.split(b";")[0].strip(), 16)
                if n == 0:
                    while True:
                        t = await ur.readuntil(b"\r\n")
                        cw.write(t)
                        if t == b"\r\n":
                            break
                    await cw.drain()
                    return
                left = n + 2
                while left > 0:
                    data = await ur.read(min(CHUNK, left))
                    if not data:
                        raise ConnectionError("upstream chunk ended early")
                    cw.write(data)
                    left -= len(data)
                    await cw.drain()
        while True:  # until EOF
            data = await ur.read(CHUNK)
            if not data:
                break
            cw.write(data)
            await cw.drain()

    async def body_fault(self, fault, req, cw, up, status_line, rheaders, length):
        ur, uw = up
        if fault == "slow":
            self.record(req, fault, "")
            cw.write(build_head(status_line, rheaders))
            rate = float(self.args.slow_bps)
            step = max(1024, int(rate / 10))
            left, t0, sent = length, time.monotonic(), 0
            while left > 0:
                data = await ur.read(min(step, left))
                if not data:
                    raise ConnectionError("upstream body ended early")
                cw.write(data)
                await cw.drain()
                left -= len(data)
                sent += len(data)
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            return True, up
        # Part of the body: a deterministic fraction in [10%, 90%], at least 1 byte, less than all.
        frac = 0.1 + 0.8 * (self.h("cut", req.target, req.header("Range") or "") % 1000) / 1000.0
        part = min(length - 1, max(1, int(length * frac)))
        variant = ""
        if fault == "stall":
            vs = self.args.stall_variants
            # In turn, so that a row with two stalls has one of each (few stalls happen per row).
            variant = vs[self.stats.data["injected"].get("stall", 0) % len(vs)]
        self.record(req, fault, variant)
        if variant != "head":
            cw.write(build_head(status_line, rheaders))
        left = part if variant != "head" else 0
        while left > 0:
            data = await ur.read(min(CHUNK, left))
            if not data:
                break
            cw.write(data)
            left -= len(data)
            await cw.drain()
        up = self.close_up(up)  # the rest of the upstream body is abandoned
        if fault == "reset-mid":
            await self.rst(cw)
            return False, up
        if fault == "truncate":
            await cw.drain()
            try:
                cw.write_eof()
            except Exception:
                pass
            return False, up
        # stall: hold the connection silent until the client gives up or --stall-seconds pass.
        t0 = time.monotonic()
        try:
            await cw.drain()
            got = await asyncio.wait_for(self.client_reader_of(cw).read(1), timeout=self.args.stall_seconds)
            waited = time.monotonic() - t0
            self.stats.bump("stall", "client_aborted")
            self.stats.data["stall"]["seconds_to_abort"].append(round(waited, 1))
            self.stats.data["stall"].setdefault("by_variant", {}).setdefault(variant, []).append(round(waited, 1))
            print("faultproxy: stall ended by the client after %.1f s%s" % (waited, "" if not got else " (it sent data)"),
                  file=sys.stderr, flush=True)
        except asyncio.TimeoutError:
            self.stats.bump("stall", "timed_out")
            print("faultproxy: stall of %s timed out after %.0f s (client still waiting)"
                  % (req.target[:200], self.args.stall_seconds), file=sys.stderr, flush=True)
        except (ConnectionError, OSError):
            waited = time.monotonic() - t0
            self.stats.bump("stall", "client_aborted")
            self.stats.data["stall"]["seconds_to_abort"].append(round(waited, 1))
            self.stats.data["stall"].setdefault("by_variant", {}).setdefault(variant, []).append(round(waited, 1))
        self.stats.write(force=True)
        return False, up

    def client_reader_of(self, cw):
        return cw._faultproxy_reader  # set in on_client

    async def bad_content_range(self, req, cw, up, status_line, rheaders, length):
        ur, uw = up
        cr = get_header(rheaders, "Content-Range") or ""
        try:
            spec, _, total = cr.split(" ", 1)[1].partition("/")
            a, _, b = spec.partition("-")
            a, b = int(a), int(b)
            total_s = total
        except (IndexError, ValueError):
            cw.write(build_head(status_line, rheaders))
            await self.relay_body(ur, cw, False, False, length)
            return True, up
        vs = self.args.bcr_variants
        variant = vs[self.h("v", req.target, req.header("Range") or "") % len(vs)]
        skip, extra, drop_tail = 0, b"", 0
        if variant == "shift":            # claims start+1..end and sends exactly those bytes
            new_cr, skip = "bytes %d-%d/%s" % (a + 1, b, total_s), 1
        elif variant == "shift-both":     # claims start+1..end+1 (last byte invented)
            new_cr, skip, extra = "bytes %d-%d/%s" % (a + 1, b + 1, total_s), 1, b"\0"
        elif variant == "wrong-total":
            try:
                new_cr = "bytes %d-%d/%d" % (a, b, int(total_s) + 1)
            except ValueError:
                new_cr = "bytes %d-%d/%s" % (a, b, total_s)
        else:                             # end-short: claims start..end-1, one byte less
            new_cr, drop_tail = "bytes %d-%d/%s" % (a, b - 1, total_s), 1
        new_len = length - skip - drop_tail + len(extra)
        self.record(req, "bad-content-range", variant)
        cw.write(build_head(status_line, replace_headers(rheaders, {"Content-Range": new_cr,
                                                                     "Content-Length": str(new_len)})))
        pos = 0
        while pos < length:
            data = await ur.read(min(CHUNK, length - pos))
            if not data:
                raise ConnectionError("upstream body ended early")
            lo = max(0, skip - pos)
            hi = min(len(data), length - drop_tail - pos)
            if hi > lo:
                cw.write(data[lo:hi])
            pos += len(data)
            await cw.drain()
        if extra:
            cw.write(extra)
        await cw.drain()
        return True, up

    # ---- hostile keys

    def inject_hostile(self, req, body):
        text = body.decode("utf-8", "surrogateescape")
        if "<IsTruncated>true</IsTruncated>" in text:
            return body
        prefix = req.query.get("prefix", "")
        keys = [prefix + k for k in hostile_relative_keys("hostile-ctl" in self.enabled and "hostile-keys" not in self.enabled)]
        if "hostile-ctl" in self.enabled and "hostile-keys" in self.enabled:
            keys += [prefix + k for k in hostile_relative_keys(True)]
        url_enc = req.query.get("encoding-type") == "url"
        entries = []
        for k in keys:
            self.hostile["/" + req.bucket + "/" + k] = True
            shown = urllib.parse.quote(k, safe="/") if url_enc else xml_key(k)
            entries.append((k.encode("utf-8"), "<Contents><Key>%s</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
                            "<ETag>&quot;%s&quot;</ETag><Size>%d</Size><StorageClass>STANDARD</StorageClass></Contents>"
                            % (shown, HOSTILE_ETAG, len(HOSTILE_BODY))))
        # Existing <Contents> with their keys, to merge in byte order.
        existing = []
        for m in re.finditer(r"<Contents>.*?</Contents>", text, re.S):
            km = re.search(r"<Key>(.*?)</Key>", m.group(0), re.S)
            raw = km.group(1) if km else ""
            if url_enc:
                kk = urllib.parse.unquote_plus(raw)
            else:
                kk = html.unescape(raw)
            existing.append((kk.encode("utf-8", "surrogateescape"), m.group(0)))
        if existing:
            first = text.index(existing[0][1])
            last_m = list(re.finditer(r"<Contents>.*?</Contents>", text, re.S))[-1]
            head, tail = text[:first], text[last_m.end():]
        else:
            i = text.rfind("</ListBucketResult>")
            if i < 0:
                return body
            head, tail = text[:i], text[i:]
        merged = sorted(existing + entries, key=lambda e: e[0])
        kc = re.search(r"<KeyCount>(\d+)</KeyCount>", head + tail)
        out = head + "".join(e[1] for e in merged) + tail
        if kc:
            out = out.replace(kc.group(0), "<KeyCount>%d</KeyCount>" % (int(kc.group(1)) + len(entries)), 1)
        self.stats.bump("hostile_listings")
        name = "hostile-keys" if "hostile-keys" in self.enabled else "hostile-ctl"
        self.record(req, name, "%d keys" % len(entries))
        return out.encode("utf-8", "surrogateescape")

    async def serve_hostile(self, req, cw):
        self.stats.bump("hostile_served", req.method)
        print("faultproxy: serving hostile object %r to %s" % (req.path[:120], req.method), file=sys.stderr, flush=True)
        self.stats.write(force=True)
        im = req.header("If-Match")
        if im and im.strip('"') not in (HOSTILE_ETAG, "*"):
            await self.send_simple(cw, req, 412, "Precondition Failed", "PreconditionFailed", "If-Match failed")
            return
        body, status, extra = HOSTILE_BODY, "HTTP/1.1 200 OK", []
        r = parse_range(req.header("Range"))
        if r:
            a, b = r
            b = len(HOSTILE_BODY) - 1 if b is None else min(b, len(HOSTILE_BODY) - 1)
            body = HOSTILE_BODY[a:b + 1]
            status = "HTTP/1.1 206 Partial Content"
            extra = [("Content-Range", "bytes %d-%d/%d" % (a, b, len(HOSTILE_BODY)))]
        headers = [("ETag", '"%s"' % HOSTILE_ETAG), ("Content-Length", str(len(body))),
                   ("Content-Type", "application/octet-stream"),
                   ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")] + extra
        cw.write(build_head(status, headers) + (b"" if req.method == "HEAD" else body))
        await cw.drain()


async def main_async(args):
    proxy = Proxy(args)

    async def on_client(r, w):
        w._faultproxy_reader = r
        await proxy.handle_client(r, w)

    server = await asyncio.start_server(on_client, "127.0.0.1", args.listen_port, limit=1 << 20, backlog=256)
    port = server.sockets[0].getsockname()[1]
    print("PORT=%d" % port, flush=True)
    proxy.stats.write(force=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)

    async def flusher():
        while True:
            await asyncio.sleep(1)
            proxy.stats.write()

    ft = asyncio.create_task(flusher())
    await stop.wait()
    ft.cancel()
    server.close()
    proxy.stats.write(force=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--upstream", required=True, help="http://HOST:PORT of the real S3 server")
    p.add_argument("--listen-port", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--faults", default="all")
    p.add_argument("--stats", default=None)
    p.add_argument("--max-per-request", type=int, default=2)
    p.add_argument("--max-per-key", type=int, default=0)
    p.add_argument("--stall-seconds", type=float, default=20.0)
    p.add_argument("--slow-bps", type=int, default=64 * 1024)
    p.add_argument("--stall-variants", default=",".join(STALL_VARIANTS),
                   help="stall variants to pick from (default: all)")
    p.add_argument("--bcr-variants", default=",".join(BCR_VARIANTS),
                   help="bad-content-range variants to pick from (default: all)")
    args = p.parse_args()
    args.stall_variants = [v for v in args.stall_variants.split(",") if v]
    if not args.stall_variants or set(args.stall_variants) - set(STALL_VARIANTS):
        print("faultproxy: --stall-variants: choose from %s" % ",".join(STALL_VARIANTS), file=sys.stderr)
        sys.exit(2)
    args.bcr_variants = [v for v in args.bcr_variants.split(",") if v]
    if not args.bcr_variants or set(args.bcr_variants) - set(BCR_VARIANTS):
        print("faultproxy: --bcr-variants: choose from %s" % ",".join(BCR_VARIANTS), file=sys.stderr)
        sys.exit(2)
    if args.faults in ("all", ""):
        args.faults = [f for f in ALL_FAULTS if f != "hostile-ctl"]
    else:
        args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    bad = [f for f in args.faults if f not in ALL_FAULTS]
    if bad or not args.upstream.startswith("http://") or not 0 <= args.rate <= 1:
        print("faultproxy: bad arguments: unknown faults %s (known: %s); --upstream must be http://; "
              "--rate in 0..1" % (bad, ",".join(ALL_FAULTS)), file=sys.stderr)
        sys.exit(2)
    args.faults = set(args.faults)
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
