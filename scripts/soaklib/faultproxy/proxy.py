"""The proxy: client connections, the seeded fault decision, forwarding and relaying bodies."""
import asyncio
import hashlib
import sys
import urllib.parse

from .http import BODY_FAULTS, CHUNK, REQUEST_FAULTS, Request, Stats, build_head, get_header, parse_head, replace_headers
from .faults import FaultsMixin


class Proxy(FaultsMixin):
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
