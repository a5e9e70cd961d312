"""soaklib — the shared harness of soak's scripts (stdlib only).

Modules:
  stats     medians and min–max spreads of repeated runs, A/B comparison
  report    JSON results, the printed ratio and A/B tables, PASS/FAIL targets
  env       a clean environment for soak and peer tools (loopback only, no instance metadata)
  seaweed   the private SeaweedFS of scripts/seaweed: start, stop, its endpoint and credentials
  verify    sha256 / md5 of trees and files against a manifest
  timing    wall and CPU seconds of one command; alternating A/B run orders
  peers     the command lines of the peer tools (aws cli, rclone, s3fs) as the benchmarks run them
  rss       the RSS/PSS sampler of a process tree (python3 -m soaklib.rss)
  summary   the benchmarks' summary tables (python3 -m soaklib.summary download|prewarm|mount RES)
  kill9     the kill -9 suite (scripts/test-kill9 runs python3 -m soaklib.kill9)
  faults    the fault suite's per-row checks (scripts/test-faults)
Tests: python3 -m unittest discover -s scripts/soaklib/tests -t scripts
"""
