"""Random search: ``budget`` architectures drawn uniformly from Ξ without replacement."""

from __future__ import annotations

import random

from ..space import Candidate
from .base import Strategy


class RandomSearch(Strategy):
    name = "random"

    def __init__(self, candidates: list[Candidate], budget: int, seed: int = 0):
        super().__init__(candidates, budget, seed)
        self._todo = random.Random(seed).sample(candidates, budget)

    def ask(self, n: int) -> list[Candidate]:
        out, self._todo = self._todo[:n], self._todo[n:]
        return out
