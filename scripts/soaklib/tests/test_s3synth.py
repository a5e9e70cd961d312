"""scripts/s3synth.py: the synthetic bucket, listed and read through its HTTP server on a small
configuration and checked against a brute-force listing of the same keys."""
import hashlib
import http.client
import importlib.util
import os
import threading
import unittest
import urllib.parse
import xml.etree.ElementTree as ET

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "s3synth.py")
_spec = importlib.util.spec_from_file_location("s3synth", _PATH)
s3synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(s3synth)

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
DIRS, PER_DIR, FLAT = 3, 5, 7


def reference(keys, prefix="", delimiter="", start_after=""):
    """S3's listing rules applied to an explicit key list: the entries in order."""
    out = []
    for k in sorted(keys):
        if not k.startswith(prefix) or k <= start_after:
            continue
        rest = k[len(prefix):]
        j = rest.find(delimiter) if delimiter else -1
        entry = ("P", prefix + rest[:j + len(delimiter)]) if j >= 0 else ("K", k)
        if entry[0] == "P" and out and out[-1] == entry:
            continue
        # a common prefix <= start-after is skipped only if all of its keys are
        out.append(entry)
    return out


class Server:
    def __init__(self, ks, bucket="synth"):
        self.srv = s3synth.serve(ks, bucket, 0)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def request(self, method, path, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body

    def list_all(self, max_keys=1000, url=False, **params):
        """Every page of a listing: (entries, pages)."""
        entries, pages, token = [], 0, None
        while True:
            q = {"list-type": "2", "max-keys": str(max_keys)}
            q.update({k.replace("_", "-"): v for k, v in params.items() if v})
            if url:
                q["encoding-type"] = "url"
            if token:
                q["continuation-token"] = token
            status, _, body = self.request("GET", "/synth?" + urllib.parse.urlencode(q))
            assert status == 200, body
            root = ET.fromstring(body)
            pages += 1
            dec = urllib.parse.unquote_plus if url else (lambda s: s)
            page = [("K", dec(e.findtext(NS + "Key"))) for e in root.findall(NS + "Contents")]
            page += [("P", dec(e.findtext(NS + "Prefix"))) for e in root.findall(NS + "CommonPrefixes")]
            assert int(root.findtext(NS + "KeyCount")) == len(page)
            assert len(page) <= max_keys
            # within one page S3 interleaves nothing: keys and prefixes are each in order
            entries += sorted(page, key=lambda e: e[1])
            if root.findtext(NS + "IsTruncated") != "true":
                assert root.find(NS + "NextContinuationToken") is None
                return entries, pages
            token = root.findtext(NS + "NextContinuationToken")

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class S3SynthTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ks = s3synth.KeySpace(DIRS, PER_DIR, FLAT, seed=7)
        cls.keys = [cls.ks.key(i) for i in range(len(cls.ks))]
        cls.server = Server(cls.ks)

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_keys_are_in_order_and_invert(self):
        self.assertEqual(len(self.keys), DIRS * PER_DIR + FLAT)
        self.assertEqual(self.keys, sorted(self.keys))
        self.assertEqual(len(set(self.keys)), len(self.keys))
        self.assertEqual(self.keys[0], "d0000/f000000.bin")
        self.assertEqual(self.keys[-1], "flat/f000006.bin")
        for i, k in enumerate(self.keys):
            self.assertEqual(self.ks.index(k), i)
        for bad in ["d0003/f000000.bin", "d0000/f000005.bin", "flat/f000007.bin", "d0000/f00000.bin",
                    "x", "flat/", "d0000/fabc.bin"]:
            self.assertIsNone(self.ks.index(bad), bad)

    def test_listings_match_brute_force(self):
        prefixes = ["", "d", "d0001", "d0001/", "d0001/f00000", "flat/", "f", "zz", "d0002/f000004.bin"]
        for prefix in prefixes:
            for delimiter in ["", "/"]:
                for start_after in ["", "d0000/f000002.bin", "d0001/", "d0001/zzz", "e", "flat/f000003.bin", "zz"]:
                    for max_keys in [1, 2, 1000]:
                        got, pages = self.server.list_all(max_keys, prefix=prefix, delimiter=delimiter,
                                                          start_after=start_after)
                        want = reference(self.keys, prefix, delimiter, start_after)
                        what = f"prefix={prefix!r} delimiter={delimiter!r} start-after={start_after!r} max={max_keys}"
                        self.assertEqual(got, want, what)
                        self.assertEqual(pages, max(1, -(-len(want) // max_keys)), what)

    def test_delimiter_at_root(self):
        got, _ = self.server.list_all(delimiter="/")
        self.assertEqual(got, [("P", "d0000/"), ("P", "d0001/"), ("P", "d0002/"), ("P", "flat/")])

    def test_encoding_type_url_round_trips(self):
        got, _ = self.server.list_all(3, url=True, prefix="d0001/", delimiter="/")
        self.assertEqual(got, reference(self.keys, "d0001/", "/"))

    def test_bad_list_arguments(self):
        for q in ["continuation-token=bogus", "max-keys=x", "max-keys=-1", "encoding-type=base64"]:
            status, _, body = self.server.request("GET", "/synth?list-type=2&" + q)
            self.assertEqual(status, 400, q)
            self.assertIn(b"InvalidArgument", body)
        status, _, _ = self.server.request("GET", "/other?list-type=2")
        self.assertEqual(status, 404)

    def test_get_head_and_ranges(self):
        key = "d0001/f000003.bin"
        size, body = self.ks.size(key), self.ks.body(key)
        self.assertTrue(1024 <= size <= 64 * 1024)
        status, h, got = self.server.request("GET", "/synth/" + key)
        self.assertEqual((status, got), (200, body))
        self.assertEqual(int(h["content-length"]), size)
        etag = h["etag"]
        status, h, got = self.server.request("HEAD", "/synth/" + key, {"Authorization": "AWS4-HMAC-SHA256 x",
                                                                        "X-Amz-Date": "20260101T000000Z"})
        self.assertEqual((status, got, h["etag"], int(h["content-length"])), (200, b"", etag, size))
        self.assertIn("last-modified", h)
        for rng, a, b in [("bytes=0-0", 0, 0), ("bytes=10-99", 10, 99), (f"bytes=5-{size + 100}", 5, size - 1),
                          ("bytes=100-", 100, size - 1), ("bytes=-10", size - 10, size - 1)]:
            status, h, got = self.server.request("GET", "/synth/" + key, {"Range": rng})
            self.assertEqual(status, 206, rng)
            self.assertEqual(got, body[a:b + 1], rng)
            self.assertEqual(h["content-range"], f"bytes {a}-{b}/{size}", rng)
        status, h, _ = self.server.request("GET", "/synth/" + key, {"Range": f"bytes={size}-"})
        self.assertEqual(status, 416)
        self.assertEqual(h["content-range"], f"bytes */{size}")
        self.assertEqual(self.server.request("GET", "/synth/" + key, {"If-Match": etag})[0], 200)
        self.assertEqual(self.server.request("GET", "/synth/" + key, {"If-Match": '"0000"'})[0], 412)
        self.assertEqual(self.server.request("GET", "/synth/" + key, {"If-None-Match": etag})[0], 304)
        self.assertEqual(self.server.request("GET", "/synth/d0009/f000000.bin")[0], 404)
        self.assertEqual(self.server.request("PUT", "/synth/" + key)[0], 405)

    def test_listing_agrees_with_objects(self):
        status, _, body = self.server.request("GET", "/synth?list-type=2&prefix=flat/")
        root = ET.fromstring(body)
        for e in root.findall(NS + "Contents"):
            k = e.findtext(NS + "Key")
            status, h, got = self.server.request("GET", "/synth/" + k)
            self.assertEqual(int(e.findtext(NS + "Size")), len(got))
            self.assertEqual(e.findtext(NS + "ETag"), h["etag"])

    def test_determinism_and_etag_modes(self):
        again = s3synth.KeySpace(DIRS, PER_DIR, FLAT, seed=7)
        other = s3synth.KeySpace(DIRS, PER_DIR, FLAT, seed=8)
        md5 = s3synth.KeySpace(DIRS, PER_DIR, FLAT, seed=7, etag_mode="md5")
        for k in self.keys:
            self.assertEqual(again.body(k), self.ks.body(k))
            self.assertEqual(again.etag(k), self.ks.etag(k))
            self.assertNotEqual(other.body(k), self.ks.body(k))
            self.assertTrue(self.ks.etag(k).endswith('-1"'))  # not a body MD5, and says so
            self.assertEqual(md5.etag(k), '"' + hashlib.md5(self.ks.body(k)).hexdigest() + '"')
        sizes = {self.ks.size(k) for k in self.keys}
        self.assertGreater(len(sizes), len(self.keys) // 2)

    def test_huge_key_space_seeks_arithmetically(self):
        # 10^12 keys: any listing that held or walked the key list would never return.
        ks = s3synth.KeySpace(1_000_000, 1_000_000, 1_000_000, seed=1)
        contents, prefixes, nxt = s3synth.list_page(ks, "", "/", 1000, start_after="d500000/")
        self.assertEqual(len(prefixes), 1000)
        self.assertEqual(prefixes[0], "d500000/")
        self.assertEqual(prefixes[-1], "d500999/")
        self.assertEqual(s3synth.list_page(ks, "", "/", 1000, token=nxt)[1][0], "d501000/")
        contents, _, nxt = s3synth.list_page(ks, "d999999/", "/", 1000, start_after="d999999/f999500.bin")
        self.assertEqual(len(contents), 499)
        self.assertIsNone(nxt)
        contents, prefixes, nxt = s3synth.list_page(ks, "", "", 3, start_after="d999999/f999998.bin")
        self.assertEqual([k for k, _ in contents], ["d999999/f999999.bin", "flat/f000000.bin", "flat/f000001.bin"])

if __name__ == "__main__":
    unittest.main()
