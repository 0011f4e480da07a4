"""Algorithm 1, step 3: consecutive ε-intervals of the sorted Ξ and one representative each."""

import math

import pytest

from ose import load_space
from ose.strategies import FPTAS, REPRESENTATIVES, intervals, representatives


@pytest.fixture(scope="module")
def xi():
    """Ξ of the bert-tiny preset (54 architectures), sorted by the layers B's p, then i."""
    return load_space("bert-tiny").candidates()


def keys(cands):
    return [c.key for c in cands]


def test_space_is_sorted_by_the_layers_b(xi):
    # ALGORITHM.md §5: a layer has 4(H² + H) + 2H + (HI + I) + (IH + H) + 2H parameters.
    def layers(c):
        D, H, I = c.xi["D"], c.xi["H"], c.xi["I"]
        return D * (4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H)

    assert len(xi) == 54
    assert [layers(c) for c in xi] == sorted(layers(c) for c in xi)


@pytest.mark.parametrize("epsilon", [1, 2, 3, 4, 5, 7, 10, 27, 53, 54])
def test_one_representative_per_interval(xi, epsilon):
    n = math.ceil(len(xi) / epsilon)
    ivs = intervals(xi, epsilon)
    assert len(ivs) == n
    # Consecutive over the sorted list: concatenated they give Ξ back, in order.
    assert keys([c for iv in ivs for c in iv]) == keys(xi)
    assert all(len(iv) == epsilon for iv in ivs[:-1]) and 1 <= len(ivs[-1]) <= epsilon
    for pick in REPRESENTATIVES:
        reps = representatives(xi, epsilon, pick)
        assert len(reps) == n
        assert all(r in iv for r, iv in zip(reps, ivs))
        s = FPTAS(xi, epsilon, pick)
        assert s.budget == n
        assert keys(s.ask(n + 5)) == keys(reps)
        assert s.ask(1) == []  # every representative handed out once


def test_epsilon_one_is_exhaustive(xi):
    assert keys(FPTAS(xi, 1).ask(1000)) == keys(xi)
    for pick in REPRESENTATIVES:
        assert keys(representatives(xi, 1, pick)) == keys(xi)


def test_epsilon_size_of_space_trains_one(xi):
    assert keys(representatives(xi, len(xi), "first")) == [xi[0].key]
    assert keys(representatives(xi, len(xi), "middle")) == [xi[(len(xi) - 1) // 2].key]
    assert keys(representatives(xi, len(xi), "last")) == [xi[-1].key]
    assert FPTAS(xi, len(xi)).budget == 1


def test_first_middle_last_picks(xi):
    # ε = 4 over 54: 13 full intervals and a last one of 2.
    ivs = intervals(xi, 4)
    assert [len(iv) for iv in ivs] == [4] * 13 + [2]
    assert keys(representatives(xi, 4, "first")) == keys([xi[4 * k] for k in range(14)])
    assert keys(representatives(xi, 4, "last")) == keys([xi[min(4 * k + 3, 53)] for k in range(14)])
    middle = representatives(xi, 4, "middle")
    assert keys(middle[:13]) == keys([xi[4 * k + 1] for k in range(13)])  # (4 - 1) // 2 = 1
    assert middle[13].key == xi[52].key  # (2 - 1) // 2 = 0
    assert keys(representatives(xi, 5, "middle")[:10]) == keys([xi[5 * k + 2] for k in range(10)])


def test_ask_hands_out_in_order(xi):
    s = FPTAS(xi, 5, "last")
    first, rest = s.ask(3), s.ask(100)
    assert keys(first + rest) == keys(representatives(xi, 5, "last")) and len(rest) == 8


@pytest.mark.parametrize("epsilon", [0, -1])
def test_epsilon_out_of_range_raises(xi, epsilon):
    with pytest.raises(ValueError, match="epsilon must be a positive integer"):
        FPTAS(xi, epsilon)


@pytest.mark.parametrize("epsilon", [54, 55, 1000])
def test_epsilon_of_xi_or_more_is_one_interval(xi, epsilon):
    # ⌈|Ξ|/ε⌉ = 1 for every ε ≥ |Ξ|: one interval, Ξ whole, and its representative.
    assert intervals(xi, epsilon) == [xi]
    for pick, index in (("first", 0), ("middle", 26), ("last", 53)):
        s = FPTAS(xi, epsilon, pick)
        assert s.budget == 1 and keys(s.ask(5)) == [xi[index].key]
