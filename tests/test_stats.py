"""Intervals of a share measured on a sample."""

import math

import pytest

from ose.stats import proportion_interval


def test_one_target_a_row_is_wilsons_interval():
    lo, hi = proportion_interval([1] * 70 + [0] * 30, [1] * 100)
    assert lo == pytest.approx(0.6041, abs=1e-4) and hi == pytest.approx(0.7810, abs=1e-4)  # 70 of 100
    lo, hi = proportion_interval([1] * 20, [1] * 20)  # all right: Wilson stays below 1 and above 0.8
    assert hi == 1.0 and 0.83 < lo < 0.84


def test_targets_that_share_a_row_widen_the_interval():
    """10 rows of 10 tokens, 70% right overall: when the rows differ (all or nothing), the
    interval is far wider than when every row is 70% right."""
    alike = proportion_interval([7] * 10, [10] * 10)
    apart = proportion_interval([10] * 7 + [0] * 3, [10] * 10)
    assert alike == (0.7, 0.7)
    se = math.sqrt(10 / 9 * (7 * 3 ** 2 + 3 * 7 ** 2)) / 100
    assert apart == pytest.approx((0.7 - 1.959963984540054 * se, 0.7 + 1.959963984540054 * se))
    assert proportion_interval([], []) == (0.0, 1.0)
