import unittest

from soaklib.stats import Spread, alternating, fmt_ratio, median, same_within_spread, speed_ratio


class StatsTests(unittest.TestCase):
    def test_median_odd_even_empty(self):
        self.assertEqual(median([3, 1, 2]), 2)
        self.assertEqual(median([4, 1, 2, 3]), 2.5)
        self.assertIsNone(median([]))
        self.assertEqual(median([None, 5, None]), 5)

    def test_spread(self):
        s = Spread.of(["2.5", 1, 3, 2, 10])
        self.assertEqual((s.n, s.median, s.lo, s.hi), (5, 2.5, 1.0, 10.0))
        self.assertTrue(s.contains(10) and not s.contains(10.01))
        self.assertEqual(s.width(), 9.0)
        self.assertEqual(s.fmt(1), "2.5 [1.0–10.0]")
        self.assertIsNone(Spread.of([]))

    def test_ratios(self):
        self.assertEqual(speed_ratio(4.0, 2.0), 2.0)
        self.assertIsNone(speed_ratio(None, 2.0))
        self.assertIsNone(speed_ratio(4.0, 0))
        self.assertEqual(fmt_ratio(3, 2), "1.50")
        self.assertEqual(fmt_ratio(None, 2), "–")

    def test_same_within_spread(self):
        a = Spread.of([1.9, 2.0, 2.1])
        self.assertTrue(same_within_spread(a, Spread.of([2.05, 2.1, 2.2])))
        # medians 2.0 and 2.6 differ by 0.6, more than either spread (0.2): a real difference
        self.assertFalse(same_within_spread(a, Spread.of([2.5, 2.6, 2.7])))
        self.assertIsNone(same_within_spread(a, None))

    def test_alternating_order(self):
        self.assertEqual(alternating(["A", "B"], 3), [(1, "A"), (1, "B"), (2, "B"), (2, "A"), (3, "A"), (3, "B")])
        order = alternating(["A", "B"], 5)
        self.assertEqual(sum(1 for _, s in order if s == "A"), 5)
        # each side goes first in alternate rounds
        firsts = [order[i][1] for i in range(0, 10, 2)]
        self.assertEqual(firsts, ["A", "B", "A", "B", "A"])


if __name__ == "__main__":
    unittest.main()
