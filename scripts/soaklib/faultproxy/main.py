"""The proxy's command line and event loop (scripts/faultproxy.py is its entry point)."""
import argparse
import asyncio
import signal
import sys

from .http import ALL_FAULTS, BCR_VARIANTS, STALL_VARIANTS
from .proxy import Proxy


async def main_async(args):
    proxy = Proxy(args)

    async def on_client(r, w):
        w._faultproxy_reader = r
        await proxy.handle_client(r, w)

    server = await asyncio.start_server(on_client, "127.0.0.1", args.listen_port, limit=1 << 20, backlog=256)
    port = server.sockets[0].getsockname()[1]
    print("PORT=%d" % port, flush=True)
    proxy.stats.write(force=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)

    async def flusher():
        while True:
            await asyncio.sleep(1)
            proxy.stats.write()

    ft = asyncio.create_task(flusher())
    await stop.wait()
    ft.cancel()
    server.close()
    proxy.stats.write(force=True)


def main(doc):
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--upstream", required=True, help="http://HOST:PORT of the real S3 server")
    p.add_argument("--listen-port", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--faults", default="all")
    p.add_argument("--stats", default=None)
    p.add_argument("--max-per-request", type=int, default=2)
    p.add_argument("--max-per-key", type=int, default=0)
    p.add_argument("--stall-seconds", type=float, default=20.0)
    p.add_argument("--slow-bps", type=int, default=64 * 1024)
    p.add_argument("--stall-variants", default=",".join(STALL_VARIANTS),
                   help="stall variants to pick from (default: all)")
    p.add_argument("--bcr-variants", default=",".join(BCR_VARIANTS),
                   help="bad-content-range variants to pick from (default: all)")
    args = p.parse_args()
    args.stall_variants = [v for v in args.stall_variants.split(",") if v]
    if not args.stall_variants or set(args.stall_variants) - set(STALL_VARIANTS):
        print("faultproxy: --stall-variants: choose from %s" % ",".join(STALL_VARIANTS), file=sys.stderr)
        sys.exit(2)
    args.bcr_variants = [v for v in args.bcr_variants.split(",") if v]
    if not args.bcr_variants or set(args.bcr_variants) - set(BCR_VARIANTS):
        print("faultproxy: --bcr-variants: choose from %s" % ",".join(BCR_VARIANTS), file=sys.stderr)
        sys.exit(2)
    if args.faults in ("all", ""):
        args.faults = [f for f in ALL_FAULTS if f != "hostile-ctl"]
    else:
        args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    bad = [f for f in args.faults if f not in ALL_FAULTS]
    if bad or not args.upstream.startswith("http://") or not 0 <= args.rate <= 1:
        print("faultproxy: bad arguments: unknown faults %s (known: %s); --upstream must be http://; "
              "--rate in 0..1" % (bad, ",".join(ALL_FAULTS)), file=sys.stderr)
        sys.exit(2)
    args.faults = set(args.faults)
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass
