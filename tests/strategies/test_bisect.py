"""--objective cost: bisection over Ξ in cost order finds the first candidate whose ê reaches the
limit, training ⌈log₂|Ξ|⌉ + 1 candidates at most, and the pick is the cheapest trained that reaches it."""

import math

import pytest

from ose.costs import Cost, Counts
from ose.space import Candidate
from ose.strategies import make_strategy
from ose.strategies.selection import best


def _candidates(n):
    """n candidates given in shuffled order, p falling as i rises: the strategy sorts them by i."""
    order = [(7 * k) % n for k in range(n)]  # a permutation for n not divisible by 7
    return [Candidate({"D": k}, Cost({"A": Counts(), "B": Counts(params=1000 - 10 * k, mults=100 * k + 1), "C": Counts()}))
            for k in order]


def _run(strategy, error_of):
    trained = []
    while batch := strategy.ask(4):
        for c in batch:
            trained.append(c.xi["D"])
            strategy.tell(c, [{"status": "ok", "error": error_of(c.xi["D"])}])
    return trained


@pytest.mark.parametrize("n", [1, 2, 3, 10, 33, 64])
def test_bisection_finds_the_first_candidate_that_reaches_the_limit_in_few_trainings(n):
    for first in range(n + 1):  # first == n: none reaches
        s = make_strategy("bisect", _candidates(n), epsilon=1)
        s.limit = 0.30
        trained = _run(s, lambda d: 0.25 if d >= first else 0.40)
        assert len(trained) <= math.ceil(math.log2(n)) + 1 == s.budget or n == 1
        assert len(set(trained)) == len(trained)
        records = [{"D": d, "error": 0.25 if d >= first else 0.40, "ops": 100 * d + 1, "params": 1000 - 10 * d,
                    "w": 1.0, "status": "ok"} for d in trained]
        pick = best(records, "cost", 0.30)
        if first < n:
            assert pick["D"] == first and first in trained
        else:  # none reaches: the dearest was tried, and the pick is the most accurate trained
            assert n - 1 in trained and pick["error"] == 0.40


def test_the_limit_must_be_set_before_asking_and_bisect_is_only_for_cost():
    import ose
    from ose.config import ConfigError

    s = make_strategy("bisect", _candidates(5), epsilon=1)
    with pytest.raises(RuntimeError, match="limit on ê"):
        s.ask(1)
    with pytest.raises(ConfigError, match="strategy bisect .* use it with --objective cost"):
        ose.extract(space="bert-tiny", strategy="bisect", out="/nonexistent/never", progress=False,
                    log=lambda *a: None)


def test_cost_picks_the_cheapest_that_reaches_and_falls_back_to_the_most_accurate():
    records = [{"error": e, "ops": o, "params": p, "w": 1.0, "status": "ok"}
               for e, o, p in [(0.2, 300, 30), (0.28, 200, 20), (0.29, 100, 40), (0.35, 50, 5)]]
    assert best(records, "cost", 0.3)["ops"] == 100
    assert best(records, "cost", 0.25)["ops"] == 300
    assert best(records, "cost", 0.1)["error"] == 0.2
