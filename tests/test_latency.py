"""Measured latency: Spearman's ρ, timing a tiny space, the file, lookups and ``ose latency``."""

import json
import math
import statistics

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


def test_t_latency_is_the_median_of_samples_across_the_run(measured):
    top = measured["maximum_point"]
    assert measured["settings"]["t_samples"] == lat.T_SAMPLES >= 3
    assert top["samples_after"] == lat.t_schedule(len(measured["architectures"]), lat.T_SAMPLES)
    assert len(set(top["samples_after"])) >= 3  # before, between and after the candidates
    for b in ("1", "4"):
        assert len(top["samples"][b]) == lat.T_SAMPLES and all(v > 0 for v in top["samples"][b])
        assert top["latency"][b] == statistics.median(top["samples"][b])


@pytest.mark.parametrize("n, samples, after", [(54, 5, [0, 13, 27, 40, 54]), (2, 5, [0, 0, 1, 1, 2]),
                                               (1, 3, [0, 0, 1]), (300, 1, [0])])
def test_t_schedule_starts_before_the_first_and_ends_after_the_last(n, samples, after):
    assert lat.t_schedule(n, samples) == after


def test_t_is_timed_between_the_candidates_like_them(tiny_file, monkeypatch):
    """The clock is replaced by a counter: which model is timed when, and what T's latency is made of."""
    calls = []

    def fake_time(model, x, repeats, warmup):
        arch = "T" if model.config.num_hidden_layers == 2 else f"H={model.config.hidden_size}"
        calls.append((arch, x.shape[0], repeats, warmup))
        return float(len(calls))

    monkeypatch.setattr(lat, "_time", fake_time)
    doc = lat.measure_space(load_space(tiny_file), batch_sizes=(1, 4), repeats=3, warmup=2, progress=False)
    timed = calls[1:]  # the first call is the discarded set-up round
    assert [arch for arch, b, *_ in timed if b == 1] == ["T", "T", "H=16", "T", "T", "H=32", "T"]
    assert {(r, w) for _, _, r, w in timed} == {(3, 2)}  # T's measurements are made like the candidates'
    top = doc["maximum_point"]
    for b in (1, 4):
        readings = [float(n) for n, (arch, size, *_) in enumerate(timed, start=2) if arch == "T" and size == b]
        assert top["samples"][str(b)] == readings
        assert top["latency"][str(b)] == statistics.median(readings)


def test_a_file_without_t_samples_still_reads(tmp_path, measured):
    top = {k: v for k, v in measured["maximum_point"].items() if k not in ("samples", "samples_after")}
    settings = {k: v for k, v in measured["settings"].items() if k != "t_samples"}
    doc = lat.load(lat.save(tmp_path, {**measured, "settings": settings, "maximum_point": top}))
    assert lat.lookup(doc, top["architecture"], 4) == top["latency"]["4"]
    assert lat.find(doc, top["architecture"])["ops"] == top["ops"]
    t_line = lat.summary(doc).splitlines()[-2]
    assert t_line.startswith("T = ") and "median of" not in t_line


def test_measure_restores_threads_and_the_random_stream(tiny_file):
    space = load_space(tiny_file)
    torch.set_num_threads(2)
    state = torch.random.get_rng_state()
    assert lat.measure(space, space.maximum_point, 2, repeats=2, warmup=0, threads=1) > 0
    assert torch.get_num_threads() == 2
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize("options", [{"repeats": 0}, {"threads": 0}, {"warmup": -1}, {"batch_sizes": (1, 0)},
                                     {"batch_sizes": ()}, {"t_samples": 0}])
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


def test_summary_shows_the_spread_of_t(measured):
    t_line = lat.summary(measured).splitlines()[-2]
    for b in ("1", "4"):
        v = measured["maximum_point"]["samples"][b]
        assert f"at batch {b} (median of 5 spread over the run, {1000 * min(v):.3g}–{1000 * max(v):.3g} ms)" in t_line


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


def test_compare_times_fp32_cpu_copies_and_leaves_the_models_as_they_were():
    """The card promises CPU latency: a model trained elsewhere (bf16 here; CUDA on a GPU machine)
    is timed as an fp32 copy on the CPU, and the model itself is not moved or cast."""
    from ose.families import get_family

    bert = get_family("bert")
    settings = bert.settings_type(vocab_size=64, max_positions=16, seq_len=8, head="classifier")
    torch.manual_seed(0)
    model = bert.build({"D": 1, "A": 2, "H": 16, "I": 32}, settings).to(torch.bfloat16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    timings = lat.compare({"m": model}, 64, 8, batch_sizes=(1,), repeats=1, warmup=0, rounds=1)
    assert timings["m"]["1"] > 0
    assert all(v.dtype == torch.bfloat16 and torch.equal(v, before[k]) for k, v in model.state_dict().items())
