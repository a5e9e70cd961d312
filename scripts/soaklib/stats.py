"""Medians and min–max spreads of repeated runs, and the A/B comparison the benchmarks print."""
import statistics
from dataclasses import dataclass


def median(xs):
    """The median of xs, None when xs is empty."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


@dataclass(frozen=True)
class Spread:
    """Repeated measurements of one thing: n, median, min and max."""
    n: int
    median: float
    lo: float
    hi: float

    @staticmethod
    def of(xs):
        xs = [float(x) for x in xs if x is not None]
        if not xs:
            return None
        return Spread(len(xs), statistics.median(xs), min(xs), max(xs))

    def contains(self, x):
        return self.lo <= x <= self.hi

    def width(self):
        return self.hi - self.lo

    def as_dict(self):
        return {"n": self.n, "median": self.median, "min": self.lo, "max": self.hi}

    def fmt(self, digits=2):
        return f"{self.median:.{digits}f} [{self.lo:.{digits}f}–{self.hi:.{digits}f}]"


def speed_ratio(other_secs, secs):
    """How many times faster `secs` is than `other_secs` (None when either is missing or zero)."""
    return other_secs / secs if other_secs and secs else None


def fmt_ratio(a, b):
    """a / b with two decimals, or an en dash when either is missing."""
    return f"{a / b:.2f}" if a and b else "–"


def same_within_spread(a, b):
    """A/B verdict: the medians differ by no more than the wider of the two min–max spreads, i.e.
    the difference is inside the noise the runs themselves show. None when either side is missing."""
    if a is None or b is None:
        return None
    return abs(a.median - b.median) <= max(a.width(), b.width())


def alternating(labels, runs):
    """The run order of an A/B(…) comparison: round r runs every label once, and every other round
    runs them in reverse, so a drift of the machine hits each side alike (A B, B A, A B, …)."""
    order = []
    for r in range(runs):
        seq = list(labels) if r % 2 == 0 else list(reversed(labels))
        order.extend((r + 1, lab) for lab in seq)
    return order
