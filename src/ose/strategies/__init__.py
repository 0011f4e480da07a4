"""Search strategies: Algorithm 1 (the FPTAS) and, beside it, the baselines."""

from __future__ import annotations

import math

from ..space import Candidate
from .base import Strategy, best_w
from .fptas import FPTAS, REPRESENTATIVES, Exhaustive, intervals, representatives
from .random_search import RandomSearch

STRATEGIES = ("fptas", "exhaustive", "random", "tpe", "nsga2")

__all__ = ["FPTAS", "REPRESENTATIVES", "STRATEGIES", "Exhaustive", "RandomSearch", "Strategy", "best_w",
           "intervals", "make_strategy", "representatives"]


def make_strategy(name: str, candidates: list[Candidate], epsilon: int, budget: int | None = None,
                  representative: str = "first", seed: int = 0) -> Strategy:
    """The named strategy over Ξ. Baselines get ``budget`` candidates, by default the
    FPTAS's ⌈|Ξ|/ε⌉, so that every strategy spends the same training compute."""
    budget = budget or math.ceil(len(candidates) / epsilon)
    if name == "fptas":
        return FPTAS(candidates, epsilon, representative, seed)
    if name == "exhaustive":
        return Exhaustive(candidates, seed)
    if name == "random":
        return RandomSearch(candidates, budget, seed)
    if name in ("tpe", "nsga2"):
        from .optuna_samplers import NSGA2, TPE

        return (TPE if name == "tpe" else NSGA2)(candidates, budget, seed)
    raise ValueError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
