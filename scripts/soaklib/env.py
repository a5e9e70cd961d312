"""A clean environment for soak and the peer tools: loopback only, no instance metadata.

Decision: every harness process gets AWS_EC2_METADATA_DISABLED=true and none of the host's other
credential sources or proxy settings, so no request can leave the machine and nothing but the test
credentials is ever used (the VM may have a real instance-metadata service)."""
import ipaddress
import os
import sys
import urllib.parse

# Credential-chain sources and proxy settings that must not leak from the host into a run.
UNSET = (
    "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY",
)
# soak's tuning knobs a caller may have exported; a run that wants one sets it explicitly.
SOAK_KNOBS = ("MAX_SPEED", "MIN_PROCESSES", "MAX_PROCESSES", "MAX_RETRIES", "RETRY_DELAY")


class NotLoopback(ValueError):
    pass


def is_loopback_host(host):
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_loopback(url):
    """Returns url when its host is loopback; raises NotLoopback otherwise."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if not is_loopback_host(host):
        raise NotLoopback(f"endpoint {url!r} is not on loopback; the harness only talks to 127.0.0.1")
    return url


def hostlist(*urls):
    """The distinct hosts of urls, in order, as a NO_PROXY-style comma list."""
    seen = []
    for u in urls:
        h = urllib.parse.urlsplit(u).hostname if "://" in u else u
        if h and h not in seen:
            seen.append(h)
    return ",".join(seen)


def clean_env(base=None, drop_knobs=False, **set_vars):
    """A copy of base (default os.environ) without UNSET (and SOAK_KNOBS when drop_knobs), with
    AWS_EC2_METADATA_DISABLED=true and set_vars applied (a value of None removes the variable)."""
    e = dict(os.environ if base is None else base)
    for k in UNSET + (SOAK_KNOBS if drop_knobs else ()):
        e.pop(k, None)
    e["AWS_EC2_METADATA_DISABLED"] = "true"
    for k, v in set_vars.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = str(v)
    if "SOAK_TEST_ENDPOINT" in e:
        require_loopback(e["SOAK_TEST_ENDPOINT"])
    return e


def parse_exports(text):
    """KEY=VALUE pairs of `export KEY=VALUE` / `KEY=VALUE` lines (what `scripts/seaweed env` prints);
    single or double quotes around the value are removed."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].strip()
        k, sep, v = line.partition("=")
        if not sep or not k.replace("_", "").isalnum():
            continue
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        out[k] = v
    return out


def shell_lines(env=None):
    """Shell lines that clean the calling shell as clean_env() does (for `eval` in bash scripts).
    Raises NotLoopback when the shell's SOAK_TEST_ENDPOINT is not on loopback."""
    e = os.environ if env is None else env
    if e.get("SOAK_TEST_ENDPOINT"):
        require_loopback(e["SOAK_TEST_ENDPOINT"])
    return ["unset " + " ".join(UNSET), "export AWS_EC2_METADATA_DISABLED=true"]


def main(argv):
    """shell: print shell_lines() (exit 2 when the endpoint is not on loopback)."""
    if argv != ["shell"]:
        sys.stderr.write("usage: python3 -m soaklib.env shell\n")
        return 64
    try:
        print("\n".join(shell_lines()))
    except NotLoopback as e:
        sys.stderr.write(f"soaklib: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
