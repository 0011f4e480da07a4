"""Measured latency: Spearman's ρ, timing a tiny space, the file, lookups and ``ose latency``."""

import json
import math

import pytest
import torch

from ose import latency as lat
from ose.space import load_space

TINY = """
name = "tiny"
family = "bert"
constraints = ["H % A == 0"]
[parameters]
D = [1]
A = [2]
H = [16, 32]
I = [32]
[maximum_point]
D = 2
A = 2
H = 32
I = 64
[settings]
vocab_size = 64
max_positions = 16
seq_len = 8
"""
FAST = {"batch_sizes": (1, 4), "repeats": 2, "warmup": 1}


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def measured(tiny_file):
    return lat.measure_space(load_space(tiny_file), **FAST, progress=False)


@pytest.mark.parametrize("xs, ys, rho", [
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7], 0.8207826816681233),  # scipy.stats.spearmanr's documented example
    ([1, 2, 2, 3], [1, 2, 3, 4], 0.9486832980505138),          # a tie: ranks 2.5, 2.5
    ([1, 1, 2, 2], [2, 2, 1, 1], -1.0),                         # ties on both sides
    ([3, 1, 2], [30, 10, 20], 1.0),
    ([1, 2, 3], [3, 2, 1], -1.0),
])
def test_spearman_known_values(xs, ys, rho):
    assert lat.spearman(xs, ys) == pytest.approx(rho)


def test_spearman_constant_side_is_nan_and_lengths_must_match():
    assert math.isnan(lat.spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        lat.spearman([1, 2], [1, 2, 3])


def test_measure_space_times_every_architecture_and_t(measured, tiny_file):
    space = load_space(tiny_file)
    assert [{k: a[k] for k in "DAHI"} for a in measured["architectures"]] == [c.xi for c in space.candidates()]
    assert measured["maximum_point"]["architecture"] == space.maximum_point
    assert measured["maximum_point"]["ops"] == space.max_cost.ops
    for entry in [measured["maximum_point"], *measured["architectures"]]:
        assert set(entry["latency"]) == {"1", "4"}
        assert all(v > 0 for v in entry["latency"].values())
    s = measured["settings"]
    assert (s["batch_sizes"], s["repeats"], s["warmup"], s["seq_len"]) == ([1, 4], 2, 1, 8)
    assert s["machine"]["cpu_count"] >= 1 and s["torch"] == torch.__version__


def test_measure_restores_threads_and_the_random_stream(tiny_file):
    space = load_space(tiny_file)
    torch.set_num_threads(2)
    state = torch.random.get_rng_state()
    assert lat.measure(space, space.maximum_point, 2, repeats=2, warmup=0, threads=1) > 0
    assert torch.get_num_threads() == 2
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize("options", [{"repeats": 0}, {"threads": 0}, {"warmup": -1}, {"batch_sizes": (1, 0)},
                                     {"batch_sizes": ()}])
def test_bad_options_are_value_errors(tiny_file, options):
    with pytest.raises(ValueError):
        lat.measure_space(load_space(tiny_file), **{**FAST, **options}, progress=False)


def test_save_load_round_trip_and_lookup(tmp_path, measured):
    path = lat.save(tmp_path, measured)
    assert path == tmp_path / lat.LATENCY_FILE
    doc = lat.load(path)
    assert doc == json.loads(json.dumps(measured)) and lat.load(tmp_path) == doc
    first = doc["architectures"][0]
    assert lat.lookup(doc, first, 4) == first["latency"]["4"]
    record = {**doc["maximum_point"]["architecture"], "lr": 0.1}  # any record holding ξ will do
    assert lat.lookup(doc, record, 1) == doc["maximum_point"]["latency"]["1"]
    with pytest.raises(ValueError, match="not measured"):
        lat.lookup(doc, {"D": 9, "A": 2, "H": 16, "I": 32}, 1)
    with pytest.raises(ValueError, match="batch size 32"):
        lat.lookup(doc, first, 32)


@pytest.mark.parametrize("content", [None, "{not json", '{"settings": {}}', "[]"])
def test_load_rejects_missing_or_invalid_files_in_one_line(tmp_path, content):
    path = tmp_path / "latency.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError) as e:
        lat.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_summary_has_the_table_and_rho(measured):
    text = lat.summary(measured)
    assert "ms@1" in text and "lat/T@4" in text and "Spearman ρ" in text
    assert len(text.splitlines()) == 1 + 1 + len(measured["architectures"]) + 2


def test_cli_writes_latency_json(run_cli, tiny_file, tmp_path):
    code, out, err = run_cli("latency", tiny_file, "--out", tmp_path / "lat", "--batch-sizes", 1, 2,
                             "--repeats", 2, "--warmup", 0, "--quiet")
    assert code == 0, err
    doc = lat.load(tmp_path / "lat" / lat.LATENCY_FILE)
    assert len(doc["architectures"]) == 2 and doc["settings"]["batch_sizes"] == [1, 2]
    assert "Spearman ρ" in out and "wrote" in out


@pytest.mark.parametrize("args", [["no-such-space"], ["TINY", "--repeats", "0"], ["TINY", "--threads", "0"],
                                  ["TINY", "--batch-sizes", "1", "0"], ["TINY", "--warmup", "-1"]])
def test_cli_bad_input_is_one_line_and_exit_2(run_cli, tiny_file, tmp_path, args):
    args = [str(tiny_file) if a == "TINY" else a for a in args]
    code, out, err = run_cli("latency", *args, "--out", tmp_path, "--quiet")
    assert code == 2 and out == ""
    assert err.startswith("ose: error: ") and err.count("\n") == 1
    assert not (tmp_path / lat.LATENCY_FILE).exists()


def test_cli_non_integer_is_a_usage_error(run_cli, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli("latency", "bert-tiny", "--repeats", "many")
    assert e.value.code == 2 and capsys.readouterr().err.startswith("ose: error: ")
