import hashlib
import os
import tempfile
import unittest

from soaklib import verify


def write(root, rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)


class VerifyTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.files = {"a": b"alpha", "sub/b": b"", "sub/deep/c": os.urandom(3 * verify.CHUNK + 7)}
        for rel, data in self.files.items():
            write(self.root, rel, data)
        self.expected = {rel: (len(d), hashlib.sha256(d).hexdigest()) for rel, d in self.files.items()}

    def tearDown(self):
        self.tmp.cleanup()

    def test_manifest_of_a_tree(self):
        self.assertEqual(verify.tree_manifest(self.root), self.expected)

    def test_every_byte_right(self):
        self.assertEqual(verify.verify_tree(self.root, self.expected), [])

    def test_one_flipped_byte_is_found(self):
        p = os.path.join(self.root, "sub/deep/c")
        with open(p, "r+b") as f:
            f.seek(2 * verify.CHUNK + 1)
            b = f.read(1)
            f.seek(2 * verify.CHUNK + 1)
            f.write(bytes([b[0] ^ 1]))
        self.assertEqual(verify.verify_tree(self.root, self.expected), ["wrong bytes: sub/deep/c"])

    def test_missing_short_and_unexpected(self):
        os.remove(os.path.join(self.root, "a"))
        write(self.root, "sub/b", b"x")
        write(self.root, "stray/.hidden", b"?")
        self.assertEqual(verify.verify_tree(self.root, self.expected),
                         ["missing: a", "wrong size: sub/b (1, expected 0)", "unexpected file: stray/.hidden"])
        self.assertEqual(verify.verify_tree(self.root, self.expected, exact=False),
                         ["missing: a", "wrong size: sub/b (1, expected 0)"])
        self.assertEqual(verify.verify_tree(self.root, self.expected, skip_dirs=("stray",)),
                         ["missing: a", "wrong size: sub/b (1, expected 0)"])

    def test_no_tree(self):
        self.assertEqual(verify.verify_tree(os.path.join(self.root, "none"), {"x": (0, "")}), ["missing: x"])

    def test_prefix_digest(self):
        p = os.path.join(self.root, "a")
        self.assertEqual(verify.file_digest(p, "md5", size=3), hashlib.md5(b"alp").hexdigest())
        self.assertIsNone(verify.file_digest(p, size=99))  # shorter than asked: no digest

    def test_manifest_files(self):
        m = os.path.join(self.root, "m.tsv")
        with open(m, "w") as f:
            f.write("a\t5\tabc\t/src/a\nsub/b\t0\tdef\n\n")
        self.assertEqual(verify.read_manifest_tsv(m), {"a": (5, "abc", "/src/a"), "sub/b": (0, "def", None)})
        s = os.path.join(self.root, "m.md5")
        with open(s, "w") as f:
            f.write("0123  f 1\nabcd *bin\n")
        self.assertEqual(verify.read_md5sum(s), {"f 1": "0123", "bin": "abcd"})


if __name__ == "__main__":
    unittest.main()
