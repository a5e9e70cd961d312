"""The fault proxy's pure parts: heads, headers, ranges, hostile keys and the seeded decision."""
import argparse
import contextlib
import io
import unittest

from soaklib.faultproxy import http
from soaklib.faultproxy.proxy import Proxy


def args(**kw):
    a = dict(upstream="http://127.0.0.1:9", seed=1, rate=0.5, faults={"500", "reset-mid", "bad-content-range"},
             stats=None, max_per_request=2, max_per_key=0)
    a.update(kw)
    return argparse.Namespace(**a)


def request(method, path, headers=()):
    r = http.Request()
    r.method, r.target, r.version, r.headers = method, path, "HTTP/1.1", list(headers)
    r.path, r.query = path, ""
    parts = path.split("/", 2)
    r.bucket, r.key = parts[1], (parts[2] if len(parts) > 2 and parts[2] else None)
    r.raw, r.seq = b"", 0
    return r


class HttpTests(unittest.TestCase):
    def test_heads_and_headers(self):
        start, hs = http.parse_head(b"GET /b/k HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n")
        self.assertEqual((start, hs), ("GET /b/k HTTP/1.1", [("Host", "x"), ("Range", "bytes=0-9")]))
        self.assertEqual(http.get_header(hs, "range"), "bytes=0-9")
        self.assertIsNone(http.get_header(hs, "If-Match"))
        self.assertEqual(http.build_head("HTTP/1.1 200 OK", [("A", "1")]), b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n")
        self.assertEqual(http.replace_headers([("Content-Length", "5"), ("ETag", "x"), ("content-length", "6")],
                                              {"Content-Length": "9", "X-New": "y"}, drop=("etag",)),
                         [("Content-Length", "9"), ("X-New", "y")])

    def test_ranges(self):
        self.assertEqual(http.parse_range("bytes=10-19"), (10, 19))
        self.assertEqual(http.parse_range("bytes=10-"), (10, None))
        for bad in (None, "", "items=1-2", "bytes=-5", "bytes=a-b"):
            self.assertIsNone(http.parse_range(bad), bad)

    def test_hostile_keys_and_xml(self):
        keys = http.hostile_relative_keys(False)
        self.assertEqual(len(keys), 14)
        self.assertTrue(any(len(k) > 4096 for k in keys))
        self.assertEqual(http.hostile_relative_keys(True), ["ctl\x01name"])
        self.assertEqual(http.xml_key("a<&>\x01\x7f\tb"), "a&lt;&amp;&gt;&#1;&#127;&#9;b")


class DecideTests(unittest.TestCase):
    def test_seeded_and_bounded(self):
        reqs = [request("GET", "/b/k%d" % i, [("Range", "bytes=0-9")]) for i in range(200)]
        a = [Proxy(args()).decide(r) for r in reqs]
        self.assertEqual(a, [Proxy(args()).decide(r) for r in reqs])  # the same seed: the same faults
        self.assertNotEqual(a, [Proxy(args(seed=2)).decide(r) for r in reqs])
        hit = [f for f in a if f]
        self.assertTrue(60 < len(hit) < 140, len(hit))  # rate 0.5
        self.assertEqual(set(hit), {"500", "reset-mid", "bad-content-range"})
        self.assertEqual([Proxy(args(rate=0)).decide(r) for r in reqs], [None] * 200)

    def test_eligibility_and_repeats(self):
        p = Proxy(args(rate=1, faults={"reset-mid", "bad-content-range", "etag-change"}))
        self.assertIsNone(p.decide(request("HEAD", "/b/k")))        # no request faults enabled
        self.assertIsNone(p.decide(request("GET", "/b/")))           # a listing: no body faults
        self.assertEqual(p.decide(request("GET", "/b/k")), "reset-mid")  # no Range: no bad-content-range
        # rate 1: every identical request is faulted, but at most max_per_request times
        p = Proxy(args(rate=1))
        r = request("GET", "/b/k", [("Range", "bytes=0-9")])
        got = []
        for _ in range(4):
            f = p.decide(r)
            got.append(f)
            if f:
                with contextlib.redirect_stderr(io.StringIO()):  # record logs one line per fault
                    p.record(r, f)
        self.assertEqual(sum(1 for f in got if f), 2)
        self.assertIsNone(got[-1])


if __name__ == "__main__":
    unittest.main()
