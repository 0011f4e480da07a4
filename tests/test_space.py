"""Search-space files: presets, constraints, one-line errors for bad files; the order of Ξ and ABⁿC."""

import itertools

import pytest

from ose import SpaceError, load_space, preset_names
from ose.report.outputs import ordered_records
from ose.space import Constraint
from ose.store import MemoryStore
from ose.strategies import representatives

GOOD = """
family = "bert"
constraints = ["H % A == 0"]
[parameters]
D = [1, 2]
A = [2, 4]
H = [32, 64, 30]
I = [64]
[maximum_point]
D = 2
A = 4
H = 64
I = 64
[settings]
vocab_size = 100
seq_len = 16
"""


def _write(tmp_path, text, name="space.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_presets_load_with_the_expected_sizes():
    assert {"bert-paper", "bert-tiny"} <= set(preset_names())
    paper = load_space("bert-paper")
    assert len(paper.architectures()) == 300
    assert paper.maximum_point == {"D": 24, "A": 16, "H": 1024, "I": 4096}
    tiny = load_space("bert-tiny")
    assert 20 <= len(tiny.architectures()) <= 60
    assert max(c.xi["H"] for c in tiny.candidates()) <= 256
    assert tiny.maximum_point in tiny.architectures()




def test_a_user_file_loads(tmp_path):
    space = load_space(_write(tmp_path, GOOD))
    assert len(space.architectures()) == 10  # 2 D x (2 A x 2 H + H=30 with A=2)
    assert space.settings.vocab_size == 100


@pytest.mark.parametrize("change, key, problem", [
    (('family = "bert"', 'colour = 3\nfamily = "bert"'), "colour", "unknown key"),
    (("[maximum_point]\nD = 2", "[maximum_point]\nQ = 1\nD = 2"), "maximum_point.Q", "unknown parameter"),
    (("vocab_size = 100", "vocab_size = \"big\""), "settings.vocab_size", "expected int"),
    (("vocab_size = 100", "vocabulary = 100"), "settings.vocabulary", "unknown key"),
    (("D = [1, 2]", "D = [1, \"two\"]"), "parameters.D", "expected integers"),
    (("D = [1, 2]", "D = []"), "parameters.D", "non-empty"),
    (("I = [64]", "I = [64]\nX = [1]"), "parameters.X", "unknown parameter"),
    (('["H % A == 0"]', '["H > 1000"]'), "constraints", "space is empty"),
    (('["H % A == 0"]', '["__import__(1)"]'), "constraints", "do not allow"),
    (('["H % A == 0"]', '["H % Q == 0"]'), "constraints", "not a parameter"),
    (('["H % A == 0"]', '["H %% A"]'), "constraints", "cannot parse"),
    (("[maximum_point]\nD = 2", "[maximum_point]\nD = 1"), "maximum_point", "above T's"),
    (('["H % A == 0"]', '["D > 0"]'), "parameters", "cannot be built"),
    (("family = \"bert\"", "family = \"gpt9\""), "family", "unknown family"),
])
def test_bad_files_get_one_line_errors_naming_file_key_and_problem(tmp_path, change, key, problem):
    path = _write(tmp_path, GOOD.replace(*change, 1))
    with pytest.raises(SpaceError) as e:
        load_space(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(path)) and key in msg and problem in msg, msg


def test_missing_maximum_point(tmp_path):
    text = GOOD.split("[maximum_point]")[0] + "[settings]\nvocab_size = 100\n"
    with pytest.raises(SpaceError, match="maximum_point: missing"):
        load_space(_write(tmp_path, text))


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(SpaceError, match="invalid TOML"):
        load_space(_write(tmp_path, "family = ["))
    with pytest.raises(SpaceError, match="not a preset"):
        load_space(tmp_path / "nope.toml")


def test_constraints_evaluate_safely():
    c = Constraint.parse("H % A == 0 and not D > 3 or I == -1", ("D", "A", "H", "I"))
    assert c({"D": 2, "A": 4, "H": 8, "I": 5})
    assert not c({"D": 4, "A": 4, "H": 8, "I": 5})
    assert Constraint.parse("1 < D <= 3", ("D",))({"D": 3})
    for bad in ("open('x')", "D.__class__", "[D]", "'a' == 'a'", "lambda: 1"):
        with pytest.raises(ValueError):
            Constraint.parse(bad, ("D",))


# --- bounded constraints: cheap to evaluate whatever the file says ---------------------------

def _space_with(tmp_path, tiny_space, constraint: str):
    # H = 4: small enough that the unbounded evaluator finishes these (and accepts them).
    text = tiny_space(H=(4,), I=(8,)).replace('["H % A == 0"]', f'["H % A == 0", {constraint!r}]'.replace("'", '"'))
    return _write(tmp_path, text)


@pytest.mark.parametrize("constraint, problem", [
    ("H ** 99999999 > 0", "has an exponent of 99999999 (exponents are limited to ±64) at D=1,A=2,H=4,I=8"),
    ("H ** H ** H > 0", "has an exponent of 256 (exponents are limited to ±64) at D=1,A=2,H=4,I=8"),
    ("H / (A - A) > 0", "divides by zero at D=1,A=2,H=4,I=8"),
    ("H % (A - A) == 0", "divides by zero at D=1,A=2,H=4,I=8"),
    ("H ** 60 > 0", "exceeds 10**30 in magnitude at D=1,A=2,H=4,I=8"),
    ("H * 10 ** 29 * H > 0", "exceeds 10**30 in magnitude at D=1,A=2,H=4,I=8"),
    ("(0 - H) ** 0.5 > 0", "has no real value at D=1,A=2,H=4,I=8"),
    ("H < 1e40", "holds 1e+40; numbers are limited to 10**30 in magnitude"),
    ("-" * 2000 + "H < 0", "nests 2002 levels deep (constraints are limited to 32)"),
], ids=["huge exponent", "tower of powers", "division by zero", "modulo by zero", "power too large",
        "product too large", "complex", "constant too large", "too deep"])
def test_unbounded_constraints_are_one_line_space_errors(tmp_path, tiny_space, run_cli, constraint, problem):
    path = _space_with(tmp_path, tiny_space, constraint)
    code, out, err = run_cli("space", path)
    assert code == 2 and out == ""
    assert err == f"ose: error: {path}: constraints: {constraint!r} {problem}\n"


def test_constraints_within_the_bounds_still_hold():
    names = ("D", "A", "H", "I")
    xi = {"D": 2, "A": 4, "H": 512, "I": 256}
    assert Constraint.parse("2 ** 64 > H and H ** 0.5 > A and (H // A) % 2 == 0", names)(xi)
    assert not Constraint.parse("-" * 30 + "H < 0", names)(xi)  # 32 levels with the comparison: the limit
    with pytest.raises(ValueError, match="nests 33 levels deep"):
        Constraint.parse("-" * 32 + "H", names)
    assert Constraint.parse("H * 10 ** 27 <= 10 ** 30", names)(xi)


# --- the order of Ξ and the ABⁿC condition -------------------------------------------------
# Written out from ALGORITHM.md §5 and docs/COUNTING.md, not from ose's own closed form, so
# that an order or a count is checked against an independent key.

PRESETS = {  # grid values in the family's order D, A, H, I, and the settings the counts use
    "bert-paper": ({"D": [2, 4, 6, 8, 10, 12], "A": [4, 8, 12, 16], "H": [512, 768, 1024],
                    "I": [256, 512, 768, 1024, 3072]}, {"V": 30522, "P": 512, "T": 2, "L": 128, "n": 2}),
    "bert-tiny": ({"D": [1, 2, 4], "A": [2, 4], "H": [64, 128, 256], "I": [128, 256, 1024]},
                  {"V": 4096, "P": 128, "T": 2, "L": 64, "n": 2}),
}


def grid(preset):
    values, _ = PRESETS[preset]
    return [dict(zip("DAHI", v)) for v in itertools.product(*values.values()) if v[2] % v[1] == 0]


def layer_params(H, I):
    return 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H


def linear_ops(rows, n, m):
    return 2 * rows * n * m


def layernorm_ops(rows, n):
    return rows * (2 * n + 4 * n - 1 + n + 3)


def layer_ops(A, H, I, L):
    d = H // A
    attention = (linear_ops(L, H, 3 * H) + A * L * L * d + A * L * L * (d - 1) + 2 * A * L * L
                 + A * L * (2 * L - 1) + A * L * (3 * L - 1) + A * L * L * d + A * L * (L - 1) * d
                 + linear_ops(L, H, H) + L * H + layernorm_ops(L, H))
    feed_forward = linear_ops(L, H, I) + 5 * L * I + linear_ops(L, I, H) + L * H + layernorm_ops(L, H)
    return attention + feed_forward


def by_part(xi, s, head="classifier"):
    """{part: (params, ops)} for one ξ under the settings s."""
    D, A, H, I, L = xi["D"], xi["A"], xi["H"], xi["I"], s["L"]
    a = ((s["V"] + s["P"] + s["T"]) * H + 2 * H, 2 * L * H + layernorm_ops(L, H))
    b = (D * layer_params(H, I), D * layer_ops(A, H, I, L))
    if head == "classifier":  # pooler and classifier read the first token only
        c = ((H * H + H) + (H * s["n"] + s["n"]), linear_ops(1, H, H) + H + linear_ops(1, H, s["n"]))
    else:  # mlm: transform, GELU, LayerNorm, decoder (weight tied to A, bias its own)
        c = ((H * H + H) + 2 * H + s["V"],
             linear_ops(L, H, H) + 5 * L * H + layernorm_ops(L, H) + linear_ops(L, H, s["V"]))
    return {"A": a, "B": b, "C": c}


def total(parts):
    return tuple(sum(parts[p][k] for p in "ABC") for k in (0, 1))


def arch(xi):
    return tuple(xi[k] for k in "DAHI")


def spec_key(xi, s):
    """Algorithm 1's order: the layers B's p, then i; ties by the whole network's, then ξ."""
    parts = by_part(xi, s)
    return (*parts["B"], *total(parts), arch(xi))


def total_key(xi, s):
    return total(by_part(xi, s))


@pytest.mark.parametrize("preset", PRESETS)
def test_the_default_order_is_by_the_layers_b_then_their_ops(preset):
    s = PRESETS[preset][1]
    expected = [arch(xi) for xi in sorted(grid(preset), key=lambda xi: spec_key(xi, s))]
    got = [arch(c.xi) for c in load_space(preset).candidates()]
    assert got == expected
    assert got == [arch(c.xi) for c in load_space(preset).candidates("intermediate")]
    # Not the whole network's order: the embeddings A grow with H alone, the layers B with D, H and I.
    assert got != [arch(xi) for xi in sorted(grid(preset), key=lambda xi: total_key(xi, s))]


@pytest.mark.parametrize("preset", PRESETS)
def test_the_total_order_is_by_the_whole_networks_p_then_i(preset):
    s = PRESETS[preset][1]
    archs = grid(preset)  # the grid's order: sorted() is stable, so ties keep it, as before
    expected = [arch(xi) for xi in sorted(archs, key=lambda xi: total_key(xi, s))]
    assert [arch(c.xi) for c in load_space(preset).candidates("total")] == expected


def test_an_unknown_order_is_refused():
    with pytest.raises(ValueError, match="sort must be one of intermediate, total, got 'p'"):
        load_space("bert-tiny").candidates("p")


def test_the_two_orders_share_3_of_30_representatives_on_bert_paper_at_epsilon_10():
    space = load_space("bert-paper")
    spec, whole = (representatives(space.candidates(sort), 10) for sort in ("intermediate", "total"))
    assert len(spec) == len(whole) == 30
    assert len({c.key for c in spec} & {c.key for c in whole}) == 3
    # Each representative opens its interval of the B-sorted list, independently sorted.
    s = PRESETS["bert-paper"][1]
    ordered = sorted(grid("bert-paper"), key=lambda xi: spec_key(xi, s))
    assert [arch(c.xi) for c in spec] == [arch(xi) for xi in ordered[::10]]


def expected_abnc(preset, head="classifier"):
    s = PRESETS[preset][1]
    parts = [by_part(xi, s, head) for xi in grid(preset)]
    return {"architectures": len(parts),
            "params": sum(p["B"][0] > p["A"][0] + p["C"][0] for p in parts),
            "ops": sum(p["B"][1] > p["A"][1] + p["C"][1] for p in parts)}


@pytest.mark.parametrize("preset, counts", [("bert-tiny", (54, 16, 54)), ("bert-paper", (300, 154, 300))])
def test_abnc_counts_the_architectures_whose_layers_b_outweigh_a_and_c(preset, counts):
    abnc = load_space(preset).abnc()
    expected = expected_abnc(preset)
    assert (abnc.size, abnc.params, abnc.ops) == tuple(expected.values()) == counts
    assert abnc.as_dict() == {**expected, "holds": False}
    assert not abnc.holds


def test_abnc_in_operations_fails_with_an_mlm_head():
    # The decoder's L·H·V products outweigh two thin layers B: the ops count is counted, not assumed.
    abnc = load_space("bert-paper").with_settings(head="mlm").abnc()
    expected = expected_abnc("bert-paper", head="mlm")
    assert (abnc.size, abnc.params, abnc.ops) == tuple(expected.values()) == (300, 154, 167)


def test_abnc_holds_where_the_layers_dominate(tmp_path, tiny_space):
    # vocabulary 512: A = (512 + 64 + 2)·64 + 128 = 37,120 parameters, one layer B 49,984.
    abnc = load_space(_write(tmp_path, tiny_space(H=(64,), I=(256,)))).abnc()
    assert (abnc.size, abnc.params, abnc.ops, abnc.holds) == (2, 2, 2, True)


@pytest.mark.parametrize("sort", [None, "intermediate", "total"])
def test_adaptive_studies_report_in_the_order_the_study_sorted_xi(sort):
    space = load_space("bert-paper")
    config = {} if sort is None else {"sort": sort}  # a study from before ``sort`` sorted by total
    meta = {"jobs": None, "settings": {"space": space.to_dict(), "config": config}}
    s = PRESETS["bert-paper"][1]
    picked = grid("bert-paper")[::7]
    store = MemoryStore()
    for xi in reversed(picked):  # the order they finished in
        p, i = total_key(xi, s)
        store.add(f"{arch(xi)}|θ", {**xi, "params": p, "ops": i}, xi, {})
    key = spec_key if sort == "intermediate" else total_key
    expected = sorted(picked, key=lambda xi: key(xi, s))
    assert [arch(r) for r in ordered_records(store, meta)] == [arch(xi) for xi in expected]


def test_a_value_listed_twice_counts_once_with_a_one_line_note(tmp_path, run_cli):
    # D = [1, 1, 2] used to put every D = 1 architecture into Ξ twice: a study planned |Ξ| jobs,
    # could store only the distinct ones, and stayed PARTIAL on every resume.
    path = _write(tmp_path, GOOD.replace("D = [1, 2]", "D = [1, 1, 2]").replace("I = [64]", "I = [64, 64]"))
    space = load_space(path)
    keys = [c.key for c in space.candidates()]
    assert len(keys) == len(set(keys)) == 10
    assert space.parameters["D"] == (1, 2) and space.parameters["I"] == (64,)
    assert space.notes == (f"note: {path}: parameters.D lists 1 more than once; parameters.I lists 64 more than "
                           f"once; Ξ counts each value once",)
    assert load_space(_write(tmp_path, GOOD, "plain.toml")).notes == ()
    code, out, err = run_cli("space", path, "--format", "csv")
    assert code == 0 and err == space.notes[0] + "\n"
    assert len(out.strip().splitlines()) == 1 + 10
