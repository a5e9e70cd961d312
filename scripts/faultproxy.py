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
import os
import sys

# The proxy itself is the package scripts/soaklib/faultproxy (http, proxy, faults, main).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # run from the source tree: leave no __pycache__ in it
from soaklib.faultproxy.main import main  # noqa: E402

if __name__ == "__main__":
    main(__doc__)
