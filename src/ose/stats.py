"""Intervals for figures measured on a sample: every final number ose reports carries one and its n."""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

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


# --- ranks: how well one ordering of candidates agrees with another --------------------------

def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's r of the average ranks); nan if either side is constant."""
    if len(xs) != len(ys):
        raise ValueError(f"spearman needs two sequences of one length, got {len(xs)} and {len(ys)}")
    rx, ry = _ranks(xs), _ranks(ys)
    n = len(rx)
    mx, my = sum(rx) / n if n else 0.0, sum(ry) / n if n else 0.0
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return cov / (vx * vy) ** 0.5 if vx and vy else float("nan")


def pair_agreement(xs: Sequence[float], ys: Sequence[float], pairs: Sequence[tuple[int, int]]) -> float:
    """The share of ``pairs`` (i, j) that ``xs`` orders as ``ys`` does; a tie in ``xs`` counts half,
    a pair ``ys`` ties is left out (nothing to order). Chance is 0.5; nan when no pair is left."""
    agree, n = 0.0, 0
    for i, j in pairs:
        if ys[i] == ys[j]:
            continue
        n += 1
        agree += 0.5 if xs[i] == xs[j] else float((xs[i] < xs[j]) == (ys[i] < ys[j]))
    return agree / n if n else float("nan")


def bootstrap_interval(statistic: Callable[[list[int]], float], n: int, resamples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``n`` units: it is called with a list of
    ``n`` unit indices drawn with replacement, ``resamples`` times (seeded: the same interval on
    every run). Resamples where the statistic is undefined (nan) are dropped."""
    rng = random.Random(seed)
    values = sorted(v for v in (statistic([rng.randrange(n) for _ in range(n)]) for _ in range(resamples))
                    if not math.isnan(v))
    if not values:
        return float("nan"), float("nan")
    cut = (1 - level) / 2
    return values[int(cut * (len(values) - 1))], values[int(round((1 - cut) * (len(values) - 1)))]
