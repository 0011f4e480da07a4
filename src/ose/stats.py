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
    lo, hi = ratio_interval(correct, targets, z)
    return max(0.0, lo), min(1.0, hi)


def ratio_interval(values_by_row, targets_by_row, z: float = Z95) -> tuple[float, float]:
    """95% normal interval of Σ values / Σ targets over rows (a mean loss per target, or a share
    whose rows hold several targets), with the cluster-robust variance of a ratio over rows."""
    values, targets = list(map(float, values_by_row)), list(map(float, targets_by_row))
    m, n = len(targets), sum(targets)
    if m < 2 or n == 0:
        return (0.0, 1.0) if m < 2 else (float("nan"), float("nan"))
    r = sum(values) / n
    residuals = sum((v - r * t) ** 2 for v, t in zip(values, targets))
    se = math.sqrt(m / (m - 1) * residuals) / n
    return r - z * se, r + z * se


def error_interval(on_rows: dict, metric: str) -> tuple[float, float]:
    """ê's 95% interval from a record's rows of B (``train.Measured.on_rows``): the error rate's
    (Wilson, or cluster-robust for rows of several targets), or the mean cross-entropy's."""
    values = on_rows["values"]
    targets = on_rows.get("targets") or [1] * len(values)
    return proportion_interval(values, targets) if metric == "error" else ratio_interval(values, targets)


def paired_higher(values: Sequence[Sequence[float]], targets: Sequence[float], score: Callable, resamples: int = 2000,
                  seed: int = 0) -> list[float]:
    """For candidates measured on the same rows (``values[k][row]``: candidate k's ê numerator on a
    row), how often candidate 0 scores higher than each other one when B's rows are resampled with
    replacement, the same resample for all (paired): the k-th share, ties counted half. ``score``
    maps an array of ê (one per candidate, each column a resample) to the scores compared (W)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    m = len(targets)
    counts = np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(resamples)]).astype(float)
    per = np.asarray(values, dtype=float)                       # candidates × rows
    e = (counts @ per.T) / (counts @ np.asarray(targets, dtype=float))[:, None]  # resamples × candidates
    w = score(e.T)                                              # candidates × resamples
    higher = (w[0] > w[1:]).mean(axis=1) + 0.5 * (w[0] == w[1:]).mean(axis=1)
    return [1.0, *higher.tolist()]


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
