"""``ose.grid`` and ``ose.constraints`` on columns: Ξ scored, filtered and sorted as arrays agrees
row for row with the per-architecture path, and strategies and budgets on the lazy sequence
pick what they pick from a list."""

import itertools
import random

import numpy as np
import pytest

from ose import SpaceError, budgets, load_space, preset_names
from ose.constraints import Constraint, Inexact, arch_key, holds
from ose.grid import Candidates, table
from ose.space import space_from_dict
from ose.strategies import make_strategy, representatives

FINE = """
family = "llama"
constraints = ["H % A == 0", "A % K == 0", "(H // A) % 2 == 0", "K * H <= 1024 * A"]
[parameters]
D = {D}
A = {A}
K = [1, 2, 4, 8]
H = {H}
I = {I}
[maximum_point]
D = 32
A = 32
K = 8
H = 4096
I = 14336
[settings]
vocab_size = 128256
max_positions = 8192
seq_len = 128
tie_embeddings = false
head = "lm"
rope_theta = 500000.0
rms_norm_eps = 1e-5
"""


def fine(tmp_path, D=range(1, 33, 5), A=range(1, 33, 3), H=range(128, 4097, 256), I=(256, 4096, 14336)) -> str:
    path = tmp_path / "fine.toml"
    path.write_text(FINE.format(D=list(D), A=list(A), H=list(H), I=list(I)))
    return str(path)


def same(listed, lazy):
    assert [c.xi for c in listed] == [c.xi for c in lazy] and [c.cost for c in listed] == [c.cost for c in lazy]


@pytest.mark.parametrize("sort", ["intermediate", "total"])
@pytest.mark.parametrize("name", preset_names())
def test_the_array_path_orders_and_counts_every_preset_as_the_per_architecture_path(name, sort):
    space = load_space(name)
    same(space.candidates(sort), table(space, sort))


def test_values_written_out_of_order_are_sorted_by_the_same_ties(tmp_path):
    # A leaves B's p and i unchanged, so candidates differing only in A tie on every count: the
    # tie is broken by ξ's values, not by the order the file lists them in
    path = tmp_path / "s.toml"
    path.write_text(FINE.replace('"H % A == 0", ', "").format(D=[2, 1], A=[8, 2, 4], H=[1024, 512], I=[4096, 1024])
                    .replace("K = [1, 2, 4, 8]", "K = [2, 1]"))
    space = load_space(str(path))
    for sort in ("intermediate", "total"):
        same(space.candidates(sort), table(space, sort))


def test_a_fine_grid_agrees_row_for_row(tmp_path):
    space = load_space(fine(tmp_path))
    lazy = table(space)
    assert len(lazy) == len(space.architectures()) > 1000
    rows = random.Random(0).sample(range(len(lazy)), 300)
    for i in rows:
        c = lazy[i]
        assert space.cost(c.xi) == c.cost
        assert (lazy.counts["params"][i], lazy.counts["ops"][i]) == (c.cost.params, c.cost.ops)
    listed = space.candidates()
    assert [listed[i].xi for i in rows] == [lazy[i].xi for i in rows]
    assert space.abnc() == type(space.abnc())(len(listed), *[
        sum(c.cost.parts["B"].__getattribute__(m) > c.cost.parts["A"].__getattribute__(m)
            + c.cost.parts["C"].__getattribute__(m) for c in listed) for m in ("params", "ops")])


EXPRESSIONS = ["H % A == 0", "H // A >= 16 and not I < 2 * H", "H / A == 16 or D * 3 - I // 7 > 40",
               "-(D - 3) ** 2 + 10 > 0", "2 ** D <= A * 2", "D < A < H <= I", "(I % 48) // (D + 1) != 3",
               "not (D == 2)", "D ** -1 < 0.6", "H - 5 * A"]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_a_constraint_on_columns_says_what_it_says_of_each_xi(text):
    names = ("D", "A", "H", "I")
    grid = list(itertools.product([1, 2, 3, 5], [1, 2, 4, 6], [16, 24, 64, 96], [32, 100, 256]))
    columns = {n: np.array([g[i] for g in grid]) for i, n in enumerate(names)}
    c = Constraint.parse(text, names)
    assert holds(c, columns).tolist() == [c(dict(zip(names, g))) for g in grid]


@pytest.mark.parametrize("text", ["H // (A - 2) > 1", "D ** 70 > 1", "H ** 9 > 0", "(D - 2) ** -1 > 0"])
def test_a_constraint_float64_cannot_be_trusted_with_goes_the_exact_way(text):
    names = ("D", "A", "H", "I")
    columns = {"D": np.array([1, 2]), "A": np.array([2, 4]), "H": np.array([2048, 4096]), "I": np.array([1, 1])}
    with pytest.raises(Inexact):
        holds(Constraint.parse(text, names), columns)


def test_a_space_whose_constraint_divides_by_zero_is_refused_as_before(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(FINE.format(D=[1, 2], A=[2, 4], H=[512], I=[1024]).replace(
        '"K * H <= 1024 * A"]', '"K * H <= 1024 * A", "H // (A - 2) > 1"]'))
    with pytest.raises(SpaceError, match=r"divides by zero at D=1,A=2,K=1,H=512,I=1024"):
        load_space(str(path))


def test_the_first_unbuildable_architecture_is_named_as_before(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(FINE.format(D=[1, 2], A=[2, 4], H=[512, 768], I=[1024]).replace(
        '"(H // A) % 2 == 0", ', ""))  # 768 / 4 = 192 is fine; 512 / 2 = 256; nothing odd yet
    load_space(str(path))
    path.write_text(FINE.format(D=[1, 2], A=[2, 6], H=[516, 1536], I=[1024]).replace(
        '"(H // A) % 2 == 0", ', ""))  # 516 / 6 = 86 even; 516 / 2 = 258; 1536 / 6 = 256: all even
    load_space(str(path))
    path.write_text(FINE.format(D=[1, 2], A=[2, 6], H=[6, 1536], I=[1024]).replace('"(H // A) % 2 == 0", ', ""))
    with pytest.raises(SpaceError, match=r"D=1,A=2,K=1,H=6,I=1024 cannot be built \(head size H/A=3 is odd"):
        load_space(str(path))


@pytest.mark.parametrize("pick", ["first", "middle", "last"])
@pytest.mark.parametrize("epsilon", [1, 3, 7, 10_000])
def test_fptas_picks_the_same_representatives_from_the_lazy_sequence(tmp_path, epsilon, pick):
    space = load_space(fine(tmp_path))
    assert representatives(space.candidates(), epsilon, pick) == representatives(table(space), epsilon, pick)


def test_random_search_draws_the_same_candidates_from_the_lazy_sequence(tmp_path):
    space = load_space(fine(tmp_path))
    listed, lazy = make_strategy("random", space.candidates(), 1, 25, seed=3), make_strategy("random", table(space), 1,
                                                                                             25, seed=3)
    assert listed.ask(25) == lazy.ask(25)


@pytest.mark.parametrize("given", [("params", "30%"), ("ops", "2e11"), ("params", "1")])
def test_budgets_cut_the_columns_as_they_cut_the_list(tmp_path, given):
    space = load_space(fine(tmp_path))
    chosen = [budgets.parse(*given)]
    listed, lazy = space.candidates(), table(space)
    try:
        kept = budgets.feasible(listed, chosen, space.max_cost)
    except Exception as e:  # noqa: BLE001  (nothing fits: both say so, alike)
        with pytest.raises(type(e), match=str(e).replace("(", r"\(").replace(")", r"\)")):
            budgets.feasible(lazy, chosen, space.max_cost)
        return
    cut = budgets.feasible(lazy, chosen, space.max_cost)
    assert isinstance(cut, Candidates) and 0 < len(cut) < len(listed)
    same(kept, cut)
    assert budgets.summary(listed, kept, chosen, space.max_cost) == budgets.summary(lazy, cut, chosen, space.max_cost)


def test_ose_space_shows_the_two_ends_of_a_large_grid(tmp_path, run_cli):
    path = fine(tmp_path, D=range(1, 33, 2), A=range(2, 33, 2), H=range(256, 4097, 256))
    space = space_from_dict(*__import__("ose.space", fromlist=["read_space"]).read_space(path))
    n = len(space.architectures())
    assert n > 1000
    code, out, _ = run_cli("space", path)
    lines = out.splitlines()
    assert code == 0 and f"{n:,} architectures" in lines[0]
    gap = next(i for i, line in enumerate(lines) if line.startswith("... "))
    assert lines[gap] == f"... {n - 40:,} more (--all shows every one) ..." and gap == 2 + 20
    ordered = table(space)
    first, last = lines[2].split(), lines[-2].split()  # the cheapest row, and the largest before the ABⁿC line
    assert [int(v.replace(",", "")) for v in first[:5]] == list(ordered[0].xi.values())
    assert [int(v.replace(",", "")) for v in last[:5]] == list(ordered[n - 1].xi.values())
    code, every, _ = run_cli("space", path, "--all")
    assert code == 0 and len(every.splitlines()) == n + 3 and "more (--all" not in every


def test_rows_that_tie_on_every_count_are_ordered_by_their_values_not_the_files_order(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(FINE.format(D=[2, 1], A=[8, 4], H=[1024, 512], I=[4096, 1024]))
    space = load_space(str(path))
    columns, counts = space.scored
    space.__dict__["scored"] = (columns, {k: np.zeros_like(v) for k, v in counts.items()})  # every count ties
    order = [tuple(c.xi.values()) for c in table(space)]
    assert order == sorted(order) and order != [tuple(int(v[i]) for v in columns.values()) for i in range(len(order))]


COUNTED = """
family = "bert"
constraints = ["H % A == 0", "{rule}"]
[parameters]
D = [1, 2, 3, 4, 6]
A = [2, 4, 6, 8, 12]
H = [96, 192, 288, 384]
I = [384, 768, 1536]
[maximum_point]
D = 6
A = 12
H = 384
I = 1536
"""


@pytest.mark.parametrize("rule, keep", [
    ("p <= 0.3 * p_T", lambda c, t: c.params <= 0.3 * t.params),
    ("i < i_T / 4 and p >= 5e6", lambda c, t: c.ops < t.ops / 4 and c.params >= 5e6),
    ("p * p * p > 0.05 * p_T * p_T * p_T", lambda c, t: c.params ** 3 > 0.05 * t.params ** 3),  # beyond 2**53
])
def test_constraints_on_p_and_i_keep_exactly_the_architectures_whose_counts_hold(tmp_path, rule, keep):
    path = tmp_path / "space.toml"
    path.write_text(COUNTED.format(rule=rule))
    space = load_space(str(path))
    every = [dict(zip("DAHI", v)) for v in itertools.product([1, 2, 3, 4, 6], [2, 4, 6, 8, 12], [96, 192, 288, 384],
                                                            [384, 768, 1536]) if v[2] % v[1] == 0]
    expected = [xi for xi in every if keep(space.cost(xi), space.max_cost)]
    assert 0 < len(expected) < len(every)
    assert space.architectures() == expected  # the exact path
    assert sorted(map(arch_key, (c.xi for c in table(space)))) == sorted(map(arch_key, expected))  # the columns
    assert [c.xi for c in table(space)] == [c.xi for c in space.candidates()]


def test_a_constraint_naming_neither_a_parameter_nor_a_count_is_refused(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(COUNTED.format(rule="params <= 0.3 * p_T"))
    with pytest.raises(SpaceError, match="names 'params', which is not a parameter .D, A, H, I. or a count"):
        load_space(str(path))
