"""``--objective cost --keep F``: the cheapest candidate predicted to keep F of T's accuracy, found by
bisection over Ξ in cost order.

Ξ is ordered by the inference cost a user pays (i, then p). The assumption: a dearer candidate's
ê is no higher than a cheaper one's, so that "ê reaches the limit" holds on a suffix of that order
and its first candidate is the answer. Bisection finds it with ⌈log₂|Ξ|⌉ + 1 trainings at most,
instead of one per candidate. The assumption is only approximately true (ê is noisy, and two
shapes of one cost differ), so the answer is the cheapest *trained* candidate that reaches the
limit, and the candidates the assumption skipped are not known to miss it; ``ose distil --keep F``
then verifies the floor on the test part.
"""

from __future__ import annotations

import math

from ..space import Candidate
from .base import Strategy


def reaches(records: list[dict], limit: float) -> bool:
    """Whether a candidate's best finished evaluation over Θ has ê at most ``limit``."""
    return any(r.get("status") == "ok" and r["error"] <= limit for r in records)


class Bisect(Strategy):
    """Binary search over Ξ in cost order for the first candidate whose ê is at most ``limit``
    (set once T's own ê is known: ``limit = 1 − F·(1 − ê_T)``)."""

    name = "bisect"
    adaptive = True

    def __init__(self, candidates: list[Candidate], seed: int = 0):
        ordered = sorted(candidates, key=lambda c: (c.cost.ops, c.cost.params))  # stable: Ξ's order among ties
        super().__init__(ordered, math.ceil(math.log2(len(ordered))) + 1 if len(ordered) > 1 else 1, seed)
        self.limit: float | None = None
        self.lo, self.hi = 0, len(ordered) - 1   # the answer, if any, lies in [lo, hi]
        self.asked: dict[str, int] = {}
        self.found: int | None = None            # the index known to reach the limit, once told
        self.done = False

    def ask(self, n: int) -> list[Candidate]:
        if self.limit is None:
            raise RuntimeError("bisect: the limit on ê is set from T's own ê before the search starts")
        if self.done or n < 1:
            return []
        mid = (self.lo + self.hi) // 2
        c = self.candidates[mid]
        if c.key in self.asked:  # lo == hi, already trained: the bisection has its answer
            self.done = True
            return []
        self.asked[c.key] = mid
        return [c]

    def tell(self, candidate: Candidate, records: list[dict]) -> None:
        at = self.asked[candidate.key]
        if reaches(records, self.limit):
            self.found, self.hi = at, at
        elif at == len(self.candidates) - 1:  # even the dearest misses: nothing reaches the limit
            self.done = True
        else:
            self.lo = at + 1
        if self.lo > self.hi:
            self.done = True
