"""Algorithm 1 of de Wynter (2020): one representative per ε-interval of the sorted Ξ."""

from __future__ import annotations

import math

from ..space import Candidate
from .base import Strategy

REPRESENTATIVES = ("first", "middle", "last")


def intervals(candidates: list[Candidate], epsilon: int) -> list[list[Candidate]]:
    """Consecutive intervals of ε architectures of the sorted Ξ: ⌈|Ξ|/ε⌉ of them."""
    return [candidates[i: i + epsilon] for i in range(0, len(candidates), epsilon)]


def representatives(candidates: list[Candidate], epsilon: int, pick: str = "first") -> list[Candidate]:
    """One member per interval. Which member is ours to choose (the paper does not say):
    ``first`` is the cheapest of its interval, ``middle`` its median, ``last`` the dearest.
    """
    index = {"first": lambda n: 0, "middle": lambda n: (n - 1) // 2, "last": lambda n: n - 1}[pick]
    # by position, so that a lazy Ξ (``grid.Candidates``) builds only the members it returns
    return [candidates[start + index(min(epsilon, len(candidates) - start))]
            for start in range(0, len(candidates), epsilon)]


class FPTAS(Strategy):
    """The paper's search; ε = 1 trains every architecture (exhaustive search)."""

    name = "fptas"

    def __init__(self, candidates: list[Candidate], epsilon: int, pick: str = "first", seed: int = 0):
        if epsilon < 1:  # ε ≥ |Ξ| is one interval, ⌈|Ξ|/ε⌉ = 1: defined, if not much of a search
            raise ValueError(f"epsilon must be a positive integer, got {epsilon}")
        super().__init__(candidates, math.ceil(len(candidates) / epsilon), seed)
        self.epsilon = epsilon
        self._todo = representatives(candidates, epsilon, pick)

    def ask(self, n: int) -> list[Candidate]:
        out, self._todo = self._todo[:n], self._todo[n:]
        return out


class Exhaustive(FPTAS):
    """Train every ξ ∈ Ξ: the baseline the FPTAS approximates (ε = 1)."""

    name = "exhaustive"

    def __init__(self, candidates: list[Candidate], seed: int = 0):
        super().__init__(candidates, 1, "first", seed)
