"""Search strategies: Algorithm 1 (the FPTAS), bisection for ``--objective cost``, and the baselines."""

from __future__ import annotations

import math

from ..registry import Registry
from ..space import Candidate
from .base import Strategy, best_w
from .bisect import Bisect
from .fptas import FPTAS, REPRESENTATIVES, Exhaustive, intervals, representatives
from .random_search import RandomSearch


def make_strategy(name: str, candidates: list[Candidate], epsilon: int, budget: int | None = None,
                  representative: str = "first", seed: int = 0) -> Strategy:
    """The named strategy over Ξ. Baselines get ``budget`` candidates, by default the
    FPTAS's ⌈|Ξ|/ε⌉, so that every strategy spends the same training compute."""
    try:
        factory = STRATEGIES.get(name)
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    return factory(candidates, epsilon=epsilon, budget=budget or math.ceil(len(candidates) / epsilon),
                   representative=representative, seed=seed)


def _optuna(name: str):
    def make(candidates, budget, seed, **_):
        from . import optuna_samplers

        return getattr(optuna_samplers, name)(candidates, budget, seed)
    return make


# Each factory takes Ξ and every option a strategy may use, and keeps the ones it needs.
STRATEGIES = Registry("strategy", {
    "fptas": lambda candidates, epsilon, representative, seed, **_: FPTAS(candidates, epsilon, representative, seed),
    "exhaustive": lambda candidates, seed, **_: Exhaustive(candidates, seed),
    "random": lambda candidates, budget, seed, **_: RandomSearch(candidates, budget, seed),
    "bisect": lambda candidates, seed, **_: Bisect(candidates, seed),
    "tpe": _optuna("TPE"),
    "nsga2": _optuna("NSGA2"),
})
