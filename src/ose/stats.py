"""Intervals for figures measured on a sample: every final number ose reports carries one and its n."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def proportion_interval(correct_by_row, targets_by_row, z: float = Z95) -> tuple[float, float]:
    """95% interval of a share (an accuracy) measured over rows that each hold one or more targets.

    One target a row (examples): the Wilson score interval, right near 0 and 1 where the normal
    one is not. Several (the masked tokens of a block, which share their text and are not
    independent): the normal interval with the cluster-robust variance of a ratio over rows.
    """
    correct, targets = list(map(float, correct_by_row)), list(map(float, targets_by_row))
    m, n = len(targets), sum(targets)
    if m == 0 or n == 0:
        return 0.0, 1.0
    p = sum(correct) / n
    if all(t == 1 for t in targets):
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return max(0.0, centre - half), min(1.0, centre + half)
    if m < 2:
        return 0.0, 1.0
    residuals = sum((c - p * t) ** 2 for c, t in zip(correct, targets))
    se = math.sqrt(m / (m - 1) * residuals) / n
    return max(0.0, p - z * se), min(1.0, p + z * se)
