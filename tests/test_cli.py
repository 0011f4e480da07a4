"""``ose space`` and ``ose count`` as a user runs them."""

import json

import pytest

INT_KEYS = ("params", "params_effective", "mults", "adds", "other")


def test_count_json_has_integer_keys_and_parts(run_cli):
    code, out, _ = run_cli("count", "D=4", "A=8", "H=1024", "I=768", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    for k in INT_KEYS:
        assert isinstance(doc[k], int)
        assert doc[k] == sum(doc["parts"][p][k] for p in "ABC")
        for p in "ABC":
            assert isinstance(doc["parts"][p][k], int)
    assert doc["params_effective"] == doc["parts"]["B"]["params"]


def test_count_vs_gives_ratios(run_cli):
    code, out, _ = run_cli("count", "D=4", "A=8", "H=1024", "I=768", "--vs", "D=24", "A=16", "H=1024", "I=4096",
                           "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert doc["ratios"]["params"] == pytest.approx(doc["params"] / doc["vs"]["params"])
    assert 0.1 < doc["ratios"]["params"] < 0.2  # Bort is about 16% of BERT-large


def test_count_settings_change_the_counts(run_cli):
    _, a, _ = run_cli("count", "D=2", "A=2", "H=64", "I=128", "--format", "json")
    _, b, _ = run_cli("count", "D=2", "A=2", "H=64", "I=128", "--format", "json", "--vocab-size", "1000",
                      "--seq-len", "64")
    a, b = json.loads(a), json.loads(b)
    assert b["parts"]["A"]["params"] < a["parts"]["A"]["params"]
    assert b["parts"]["B"]["mults"] < a["parts"]["B"]["mults"]
    assert b["parts"]["B"]["params"] == a["parts"]["B"]["params"]


def test_space_json(run_cli):
    code, out, _ = run_cli("space", "bert-paper", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and len(doc["architectures"]) == 300
    first = doc["architectures"][0]
    assert set("DAHI") <= set(first) and all(isinstance(first[k], int) for k in INT_KEYS)
    assert doc["maximum_point"]["D"] == 24
    assert doc["sort"] == "intermediate"
    layers = [a["parts"]["B"]["params"] for a in doc["architectures"]]
    assert layers == sorted(layers)
    assert doc["abnc"] == {"architectures": 300, "params": 154, "ops": 300, "holds": False}
    _, out, _ = run_cli("space", "bert-paper", "--format", "json", "--sort", "total")
    doc = json.loads(out)
    assert doc["sort"] == "total"
    assert [a["params"] for a in doc["architectures"]] == sorted(a["params"] for a in doc["architectures"])


def test_space_table_and_csv(run_cli):
    code, out, _ = run_cli("space", "bert-tiny")
    assert code == 0 and "bert-tiny" in out and "params/T" in out
    code, out, _ = run_cli("space", "bert-tiny", "--format", "csv")
    lines = out.strip().splitlines()
    assert lines[0].startswith("D,A,H,I,params") and len(lines) == 55


ABNC_PAPER = ("ABⁿC: part B costs more than A + C for 154 of 300 architectures in parameters, 300 of 300 in "
              "operations; the FPTAS guarantee assumes all (see docs/SEARCH.md)")


def _column(out, name):
    """One integer column of ``ose space``'s table, top to bottom."""
    lines = out.splitlines()
    at = lines[1].split().index(name)
    return [int(line.split()[at].replace(",", "")) for line in lines[2:-1]]


def test_space_table_says_its_order_and_the_abnc_count(run_cli):
    code, out, _ = run_cli("space", "bert-paper")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 + 300 + 1
    assert lines[0].endswith("sorted by the layers B (p, then i)")
    assert lines[-1] == ABNC_PAPER
    layers = _column(out, "params_effective")
    assert layers == sorted(layers) and _column(out, "params") != sorted(_column(out, "params"))

    code, total, _ = run_cli("space", "bert-paper", "--sort", "total")
    assert code == 0 and total.splitlines()[0].endswith("sorted by the whole network (p, then i)")
    assert total.splitlines()[-1] == ABNC_PAPER
    assert _column(total, "params") == sorted(_column(total, "params"))
    assert total.splitlines()[2:] != lines[2:] and sorted(total.splitlines()[2:]) == sorted(lines[2:])


@pytest.mark.parametrize("command", [["space", "bert-tiny"], ["extract"], ["groundtruth"]])
def test_an_unknown_sort_is_one_line_and_exit_2(run_cli, capsys, command):
    with pytest.raises(SystemExit) as e:
        run_cli(*command, "--sort", "params")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith("ose: error: argument --sort: invalid choice: 'params'") and "intermediate" in err


@pytest.mark.parametrize("args, problem", [
    (("count", "D=4", "A=3", "H=1024", "I=768"), "divisible"),
    (("count", "D=4", "A=x", "H=1024", "I=768"), "must be an integer"),
    (("count", "D=4", "A=8", "H=1024"), "missing I"),
    (("count", "D=4", "A=8", "H=1024", "I=768", "Q=1"), "expected NAME=VALUE"),
    (("count", "D=4", "A=8", "H=1024", "I=768", "--seq-len", "0"), "seq_len must be positive"),
    (("count", "D=0", "A=8", "H=1024", "I=768"), "D must be positive"),
    (("space", "no-such-space"), "not a preset"),
    (("count", "D=1", "A=2", "K=1", "H=64", "I=8"), "(--family llama has K)"),
    (("count", "D=1", "D=2", "A=2", "H=64", "I=8"), "D is given twice"),
    (("count", "--family", "llama", "D=1", "A=1", "K=1", "H=3", "I=8"), "head size H/A=3 is odd"),
    (("count", "--family", "llama", "D=1", "A=2", "K=1", "H=64", "I=8", "--rope-theta", "0"),
     "rope_theta must be positive"),
    (("count", "--family", "llama", "D=1", "A=2", "K=1", "H=64", "I=8", "--rms-norm-eps", "-1"),
     "rms_norm_eps must not be negative"),
])
def test_bad_input_is_one_line_and_exit_2(run_cli, args, problem):
    code, out, err = run_cli(*args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ose: error:") and problem in err, err


def test_ose_distils_default_cap_is_one_number():
    """The command line states distil's cap without importing torch; it must be distil's own."""
    from ose import cli, distil

    assert cli.STEPS == distil.STEPS
