import unittest

from soaklib import env, peers


class EnvTests(unittest.TestCase):
    def test_clean_env_drops_host_credentials_and_proxies(self):
        base = {"PATH": "/bin", "AWS_PROFILE": "prod", "https_proxy": "http://p:3128", "NO_PROXY": "x",
                "AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "MAX_SPEED": "5", "AWS_EC2_METADATA_DISABLED": "false"}
        e = env.clean_env(base)
        self.assertEqual(e["PATH"], "/bin")
        self.assertEqual(e["AWS_EC2_METADATA_DISABLED"], "true")
        for k in ("AWS_PROFILE", "https_proxy", "NO_PROXY", "AWS_WEB_IDENTITY_TOKEN_FILE"):
            self.assertNotIn(k, e)
        self.assertEqual(e["MAX_SPEED"], "5")
        self.assertNotIn("MAX_SPEED", env.clean_env(base, drop_knobs=True))
        self.assertEqual(base["AWS_PROFILE"], "prod")  # the caller's dict is untouched

    def test_clean_env_sets_and_removes(self):
        e = env.clean_env({"A": "1"}, B=2, A=None)
        self.assertEqual((e.get("A"), e["B"]), (None, "2"))

    def test_clean_env_refuses_a_remote_endpoint(self):
        with self.assertRaises(env.NotLoopback):
            env.clean_env({}, SOAK_TEST_ENDPOINT="http://s3.amazonaws.com")
        self.assertEqual(env.clean_env({}, SOAK_TEST_ENDPOINT="http://127.0.0.1:8333")["SOAK_TEST_ENDPOINT"],
                         "http://127.0.0.1:8333")

    def test_loopback(self):
        for h in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"):
            self.assertTrue(env.is_loopback_host(h), h)
        for h in ("10.0.0.1", "example.com", "0.0.0.0", "", "169.254.169.254"):
            self.assertFalse(env.is_loopback_host(h), h)
        self.assertEqual(env.require_loopback("http://[::1]:9/x"), "http://[::1]:9/x")
        with self.assertRaises(env.NotLoopback):
            env.require_loopback("http://169.254.169.254/latest")

    def test_hostlist(self):
        self.assertEqual(env.hostlist("http://127.0.0.1:1", "localhost", "http://127.0.0.1:2", "http://[::1]:3"),
                         "127.0.0.1,localhost,::1")

    def test_parse_exports(self):
        text = ("export AWS_ACCESS_KEY_ID=k1\nexport AWS_SECRET_ACCESS_KEY='s e'\n# c\n\n"
                "SOAK_TEST_ENDPOINT=\"http://127.0.0.1:8335\"\nnot a line\n")
        self.assertEqual(env.parse_exports(text), {"AWS_ACCESS_KEY_ID": "k1", "AWS_SECRET_ACCESS_KEY": "s e",
                                                   "SOAK_TEST_ENDPOINT": "http://127.0.0.1:8335"})

    def test_peer_env_and_commands(self):
        e = peers.peer_env("/b", "http://127.0.0.1:8333", "K", "S")
        self.assertEqual(e["RCLONE_CONFIG_SW_ENDPOINT"], "http://127.0.0.1:8333")
        self.assertEqual(e["AWS_CONFIG_FILE"], "/b/aws-config")
        with self.assertRaises(env.NotLoopback):
            peers.peer_env("/b", "https://s3.example.com", "K", "S")
        self.assertEqual(peers.aws_sync("http://127.0.0.1:1", "bench", "d", "/dest"),
                         ["aws", "--endpoint-url", "http://127.0.0.1:1", "s3", "sync", "s3://bench/d/", "/dest",
                          "--only-show-errors"])
        self.assertEqual(peers.rclone_copy("bench", "d", "/dest")[-3:], ["copy", "sw:bench/d", "/dest"])
        self.assertIn("use_cache=/c", peers.s3fs_mount("http://127.0.0.1:1", "bench", "/m", "/c", "/p"))


if __name__ == "__main__":
    unittest.main()


class ShellTests(unittest.TestCase):
    def test_shell_lines(self):
        lines = env.shell_lines({"SOAK_TEST_ENDPOINT": "http://127.0.0.1:1"})
        self.assertTrue(lines[0].startswith("unset ") and "https_proxy" in lines[0] and "AWS_PROFILE" in lines[0])
        self.assertEqual(lines[1], "export AWS_EC2_METADATA_DISABLED=true")
        with self.assertRaises(env.NotLoopback):
            env.shell_lines({"SOAK_TEST_ENDPOINT": "http://10.0.0.1:1"})
