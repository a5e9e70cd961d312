"""Fault injection: the replies and body faults of the proxy (a mixin of proxy.Proxy)."""
import asyncio
import html
import re
import socket
import struct
import sys
import time
import urllib.parse
from xml.sax.saxutils import escape as xml_escape

from .http import CHUNK, HOSTILE_BODY, HOSTILE_ETAG, build_head, get_header, hostile_relative_keys, parse_range, replace_headers, xml_key


class FaultsMixin:
    """The Proxy's replies that inject a fault: simple error replies, resets, body faults (reset-mid,
    truncate, stall, slow), a wrong Content-Range, and hostile keys in listings."""

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
