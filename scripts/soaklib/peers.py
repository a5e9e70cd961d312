"""The peer tools as the benchmarks run them: aws cli, rclone and s3fs, configured from the
environment only (private empty config files, so ~/.aws and ~/.config/rclone are never read or
changed), against the loopback endpoint.

scripts/bench-download, bench-prewarm and bench-mount build the same command lines in bash;
`peer-env` command of `python3 -m soaklib.peers` prints their environment as export lines."""
import os
import sys

from .env import require_loopback

REGION = "us-east-1"  # SeaweedFS accepts any region; the signatures must agree on one


def peer_env(base_dir, endpoint, key, secret):
    """The variables aws cli and rclone need (remote "sw" for rclone), with their config files
    (created empty) under base_dir."""
    require_loopback(endpoint)
    e = {
        "AWS_CONFIG_FILE": os.path.join(base_dir, "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(base_dir, "aws-credentials"),
        "RCLONE_CONFIG": os.path.join(base_dir, "rclone-empty.conf"),
        "RCLONE_CONFIG_SW_TYPE": "s3", "RCLONE_CONFIG_SW_PROVIDER": "SeaweedFS", "RCLONE_CONFIG_SW_ENV_AUTH": "false",
        "RCLONE_CONFIG_SW_ACCESS_KEY_ID": key, "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": secret,
        "RCLONE_CONFIG_SW_ENDPOINT": endpoint, "RCLONE_CONFIG_SW_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return e


def create_config_files(env):
    for k in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "RCLONE_CONFIG"):
        os.makedirs(os.path.dirname(env[k]), exist_ok=True)
        open(env[k], "w").close()


def s3fs_passwd(path, key, secret):
    """s3fs's credentials file (mode 0600, as s3fs requires)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{key}:{secret}\n")
    os.chmod(path, 0o600)


def soak_download(soak, endpoint, bucket, prefix, dest):
    return [soak, "download", f"s3://{bucket}/{prefix}/", dest, "--endpoint-url", endpoint, "--log-level", "warning"]


def soak_prewarm(soak, endpoint, bucket, prefix, cache_dir, *extra):
    return [soak, "prewarm", f"s3://{bucket}/{prefix}/", "--cache-dir", cache_dir, "--endpoint-url", endpoint,
            "--log-level", "warning", *extra]


def aws_sync(endpoint, bucket, prefix, dest):
    return ["aws", "--endpoint-url", endpoint, "s3", "sync", f"s3://{bucket}/{prefix}/", dest, "--only-show-errors"]


def rclone_copy(bucket, prefix, dest):
    # rclone 1.60 fails with "LoadCustomCABundleError ... unsupported transport" when AWS_CA_BUNDLE is set
    return ["env", "-u", "AWS_CA_BUNDLE", "rclone", "copy", f"sw:{bucket}/{prefix}", dest]


def rclone_mount(bucket, mnt, cache_dir):
    return ["env", "-u", "AWS_CA_BUNDLE", "rclone", "mount", f"sw:{bucket}", mnt, "--vfs-cache-mode", "full",
            "--read-only", "--cache-dir", cache_dir]


def s3fs_mount(endpoint, bucket, mnt, cache_dir, passwd_file):
    return ["s3fs", bucket, mnt, "-f", "-o", "ro", "-o", f"use_cache={cache_dir}", "-o", f"url={endpoint}",
            "-o", "use_path_request_style", "-o", f"endpoint={REGION}", "-o", f"passwd_file={passwd_file}"]


def main(argv):
    """peer-env BASE_DIR: export lines for the peer tools, their config files created empty;
    s3fs-passwd FILE: s3fs's credentials file. Endpoint and keys come from the environment
    (SOAK_TEST_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: `scripts/seaweed env`)."""
    e = os.environ
    if argv[:1] == ["s3fs-passwd"] and len(argv) == 2:
        s3fs_passwd(argv[1], e["AWS_ACCESS_KEY_ID"], e["AWS_SECRET_ACCESS_KEY"])
        return 0
    if argv[:1] != ["peer-env"] or len(argv) != 2:
        sys.stderr.write("usage: python3 -m soaklib.peers peer-env BASE_DIR | s3fs-passwd FILE\n")
        return 64
    env = peer_env(argv[1], e["SOAK_TEST_ENDPOINT"], e["AWS_ACCESS_KEY_ID"], e["AWS_SECRET_ACCESS_KEY"])
    create_config_files(env)
    import shlex
    for k, v in env.items():
        print(f"export {k}={shlex.quote(v)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
