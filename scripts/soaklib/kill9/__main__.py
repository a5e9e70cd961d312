"""python3 -m soaklib.kill9 [read MODE MNT SEED OUT | proxy | dataset SRC SEED]

Without arguments: the kill -9 suite's driver (settings from the environment, see state.py); exit
0 if every trial passed, 1 if any failed, 2 when the driver itself broke (a setup error).
read: one paced reader through the mount (mounttrial starts two per kill); proxy: the
request-logging proxy (prints its port); dataset: write the seeded objects, print the manifest."""
import sys

from . import state as C
from .main import dataset, main
from .reader import reader
from .reqlog import proxy


def run(argv):
    if argv[:1] == ["dataset"]:
        dataset(argv[1], int(argv[2]))
        return 0
    if argv[:1] == ["read"]:
        C.load()
        return reader(argv[1:])
    if argv[:1] == ["proxy"]:
        C.load()
        return proxy(argv[1:])
    try:
        return main()
    except Exception:
        import traceback
        traceback.print_exc()
        return 2  # the driver itself broke: a setup error, not a soak failure


sys.exit(run(sys.argv[1:]))
