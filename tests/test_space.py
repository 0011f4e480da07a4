"""Search-space files: presets, constraints, and one-line errors for bad files."""

import pytest

from ose import SpaceError, load_space, preset_names
from ose.space import Constraint

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


def test_candidates_are_sorted_by_params_then_ops():
    keys = [(c.cost.params, c.cost.ops) for c in load_space("bert-paper").candidates()]
    assert keys == sorted(keys)


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
