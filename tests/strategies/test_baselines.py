"""Baselines on an equal budget: random, TPE, NSGA-II; and the loop that drives every strategy."""

import pytest

from ose import load_space
from ose.pipeline import drive, job_key
from ose.strategies import STRATEGIES, make_strategy
from ose.config import Theta


@pytest.fixture(scope="module")
def candidates():
    return load_space("bert-tiny").candidates()


def _fake_w(c):
    # A made-up surrogate: W peaks at a mid-sized architecture, so adaptive samplers have a signal.
    return 1.0 / (1 + abs(c.xi["H"] - 128) / 64 + abs(c.xi["D"] - 2))


def _table(candidates):
    th = Theta()
    return {job_key(c.xi, th): {**c.xi, "w": _fake_w(c), "error": 1 / (1 + _fake_w(c)), "status": "ok"}
            for c in candidates}


def _run(name, candidates, seed, budget=None, ask_batch=1, rounds=None):
    table = _table(candidates)
    strategy = make_strategy(name, candidates, epsilon=3, budget=budget, seed=seed)
    asked = []

    def run_jobs(jobs):
        asked.extend(k for k, _, _ in jobs)
        if rounds is not None:
            rounds.append(len(jobs))
        return {k: table[k] for k, _, _ in jobs}

    drive(strategy, [Theta()], run_jobs, None if strategy.adaptive else strategy.ask(strategy.budget), ask_batch)
    return asked


# bisect trains ⌈log₂|Ξ|⌉ + 1 at most, stopping once it has its answer (tests/strategies/test_bisect.py)
@pytest.mark.parametrize("name", [n for n in STRATEGIES.names() if n != "bisect"])
def test_each_strategy_trains_its_budget_of_distinct_candidates_in_xi(name, candidates):
    asked = _run(name, candidates, seed=1)
    expected = len(candidates) if name == "exhaustive" else -(-len(candidates) // 3)
    assert len(asked) == expected
    assert len(set(asked)) == len(asked)
    assert set(asked) <= set(_table(candidates))


@pytest.mark.parametrize("name", ["random", "tpe", "nsga2"])
def test_same_seed_same_asks_and_seeds_differ(name, candidates):
    assert _run(name, candidates, seed=3) == _run(name, candidates, seed=3)
    assert _run(name, candidates, seed=3) != _run(name, candidates, seed=4)


def test_budget_is_configurable_and_bounded(candidates):
    assert len(_run("random", candidates, seed=0, budget=5)) == 5
    with pytest.raises(ValueError, match="budget"):
        make_strategy("random", candidates, epsilon=3, budget=len(candidates) + 1)
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("annealing", candidates, epsilon=3)


def test_tpe_learns_from_w(candidates):
    # On a smooth made-up W, TPE's later asks should beat random's on average.
    def mean_w(asked):
        by_key = {job_key(c.xi, Theta()): _fake_w(c) for c in candidates}
        tail = asked[len(asked) // 2:]
        return sum(by_key[k] for k in tail) / len(tail)

    tpe = sum(mean_w(_run("tpe", candidates, seed=s, budget=30)) for s in range(3))
    rnd = sum(mean_w(_run("random", candidates, seed=s, budget=30)) for s in range(3))
    assert tpe > rnd


@pytest.mark.parametrize("name", ["tpe", "nsga2"])
def test_adaptive_strategies_ask_rounds_of_ask_batch_distinct_candidates(name, candidates):
    rounds = []
    asked = _run(name, candidates, seed=2, ask_batch=4, rounds=rounds)
    budget = -(-len(candidates) // 3)
    assert rounds == [4] * (budget // 4) + ([budget % 4] if budget % 4 else [])
    assert len(set(asked)) == len(asked) == budget
    assert _run(name, candidates, seed=2, ask_batch=4) == asked
