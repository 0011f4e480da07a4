"""``ose extract`` end to end on a tiny space: Algorithm 1 from Ξ and data to ξ* and its files."""

import contextlib
import csv
import importlib
import json
import math

import pytest
import torch

import ose
from ose import latency as lat
from ose import load_space
from ose.cli import main
from ose.config import load_config
from ose.pipeline import abnc_warning, plan
from ose.strategies import make_strategy, representatives

SIZE = 8  # |Ξ|
THETAS = [{"lr": 0.1, "momentum": 0.9, "batch_size": 16}, {"lr": 0.3, "momentum": 0.0, "batch_size": 16}]
RECORD_KEYS = ("D", "A", "H", "I", "lr", "momentum", "batch_size", "params", "mults", "adds", "other", "error", "w",
               "steps", "seconds")
TINY = {"max_examples": 2000, "eval_batches": 1, "threads": 1}


@contextlib.contextmanager
def cache(path):
    """OSE_CACHE for fixtures wider than one test (the monkeypatch fixture is per test)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OSE_CACHE", str(path))
        yield


def run(**options):
    return ose.extract(progress=False, log=lambda *a: None, **{**TINY, **options})


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_space):
    root = tmp_path_factory.mktemp("extract")
    (root / "space.toml").write_text(tiny_space(H=(32, 64), I=(64, 128), head="mlm"))
    return root


@pytest.fixture(autouse=True)
def _env(root, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(root / "cache"))
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def study(root):
    """ε = 3 over |Ξ| = 8, |Θ| = 2: ⌈8/3⌉ × 2 = 6 trainings of 5 steps."""
    with cache(root / "cache"):
        result = run(space=str(root / "space.toml"), epsilon=3, steps=5, theta=THETAS, seed=0, out=str(root / "a"))
    return result, json.loads((root / "a" / "results.json").read_text())


def test_results_json_has_settings_maximum_point_evaluations_best(study, root):
    result, doc = study
    assert {"settings", "maximum_point", "evaluations", "best"} <= set(doc)
    settings = doc["settings"]
    assert settings["config"]["epsilon"] == 3 and settings["config"]["steps"] == 5
    assert settings["config"]["theta"] == THETAS
    t = doc["maximum_point"]
    assert t["architecture"] == {"D": 2, "A": 2, "H": 64, "I": 128}
    for k in ("params", "mults", "adds", "other"):
        assert isinstance(t[k], int) and t[k] > 0
    for r in doc["evaluations"]:
        assert set(RECORD_KEYS) <= set(r), set(RECORD_KEYS) - set(r)
        assert r["status"] == "ok" and 0 <= r["error"] <= 1 and r["steps"] == 5 and r["seconds"] >= 0
    assert result.evaluations == doc["evaluations"] and result.best == doc["best"]


def test_one_training_per_representative_and_theta(study, root):
    _, doc = study
    assert len(doc["evaluations"]) == math.ceil(SIZE / 3) * len(THETAS) == 6
    bound = {"space_size": SIZE, "thetas": 2, "epsilon": 3, "steps": 5, "candidates": 3}
    assert {k: doc["settings"]["bound"].get(k) for k in bound} == bound
    reps = [c.xi for c in representatives(load_space(root / "space.toml").candidates(), 3, "first")]
    # Θ is the outer loop, as in the paper.
    expected = [(theta["lr"], xi) for theta in THETAS for xi in reps]
    assert [(r["lr"], {k: r[k] for k in "DAHI"}) for r in doc["evaluations"]] == expected


def test_best_is_the_argmax_of_w(study):
    _, doc = study
    ws = [float(r["w"]) for r in doc["evaluations"]]
    assert float(doc["best"]["w"]) == max(ws)
    assert doc["best"] == doc["evaluations"][ws.index(max(ws))]


def test_w_matches_its_formula(study, root):
    _, doc = study
    space = load_space(root / "space.toml")
    t = doc["maximum_point"]
    t_ops = t["mults"] + t["adds"] + t["other"]
    assert (t["params"], t_ops) == (space.max_cost.params, space.max_cost.ops)
    for r in doc["evaluations"]:
        cost = space.cost({k: r[k] for k in "DAHI"})
        ops = r["mults"] + r["adds"] + r["other"]
        assert (r["params"], ops) == (cost.params, cost.ops)
        w = (t["params"] - r["params"]) / t["params"] * (t_ops - ops) / t_ops / r["error"]
        assert r["w"] == pytest.approx(w, rel=1e-12)


def test_best_config_loads_with_transformers(study, root):
    from transformers import AutoConfig

    _, doc = study
    cfg = AutoConfig.from_pretrained(root / "a" / "best")
    best = doc["best"]
    assert cfg.model_type == "bert"
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size, cfg.intermediate_size) == \
        (best["D"], best["A"], best["H"], best["I"])
    assert cfg.vocab_size == 512


def test_csv_files(study, root):
    _, doc = study
    with open(root / "a" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"D", "A", "H", "I", "lr", "params", "ops", "error", "w"} <= set(rows[0])
    assert [float(r["w"]) for r in rows] == pytest.approx([float(r["w"]) for r in doc["evaluations"]])
    with open(root / "a" / "pareto.csv", newline="") as f:
        front = list(csv.DictReader(f))
    assert 1 <= len(front) <= 6
    points = [(int(r["params"]), int(r["ops"]), float(r["error"])) for r in front]
    everything = [(r["params"], r["ops"], r["error"]) for r in doc["evaluations"]]
    for p in points:
        assert not any(all(x <= y for x, y in zip(o, p)) and o != p for o in everything)


def hand_timed_latency(space) -> dict:
    """A latency document for every ξ and T at batch 1, numbers made up: a fixed cost per pass plus one per op."""
    def entry(xi):
        cost = space.cost(xi)
        return {**xi, "ops": cost.ops, "params": cost.params, "latency": {"1": 1e-3 + cost.ops * 1e-11}}

    top = entry(space.maximum_point)
    return {"settings": {"batch_sizes": [1]}, "maximum_point": {"architecture": dict(space.maximum_point), **top},
            "architectures": [entry(c.xi) for c in space.candidates()]}


def test_speed_latency_reports_the_factors_w_used(root):
    space = load_space(root / "space.toml")
    doc_in = hand_timed_latency(space)
    (root / "hand-latency.json").write_text(json.dumps(doc_in))
    lines = []
    result = ose.extract(space=str(root / "space.toml"), epsilon=4, steps=2, theta=THETAS[:1], seed=0,
                         out=str(root / "lat"), speed="latency", latency_file=str(root / "hand-latency.json"),
                         progress=False, log=lines.append, **TINY)
    t_seconds = doc_in["maximum_point"]["latency"]["1"]
    assert result.document["settings"]["speed"] == {"kind": "latency", "batch_size": 1, "T_seconds": t_seconds}
    with open(root / "lat" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for row, r in zip(rows, result.evaluations):
        seconds = lat.lookup(doc_in, r, 1)
        assert float(row["latency"]) == r["latency"] == seconds
        w = (1 - r["params"] / space.max_cost.params) * (1 - seconds / t_seconds) / r["error"]
        assert float(row["w"]) == pytest.approx(w, rel=1e-12)
    pick = result.best
    (pick_line,) = [line for line in lines if line.startswith("ξ* = ")]
    assert f"lat/T = {pick['latency'] / t_seconds:.3f}" in pick_line and "i/T" not in pick_line
    page = (root / "lat" / "report.html").read_text()
    assert "W = (1 − p/T)·(1 − lat/T) / ê" in page and "lat: latency W uses, ms at batch 1" in page


def test_same_seed_same_evaluations(study, root):
    _, doc = study
    run(space=str(root / "space.toml"), epsilon=3, steps=5, theta=THETAS, seed=0, out=str(root / "b"))
    again = json.loads((root / "b" / "results.json").read_text())

    def strip(records):
        return [{k: v for k, v in r.items() if k != "seconds" and not k.endswith("_at")} for r in records]

    assert strip(again["evaluations"]) == strip(doc["evaluations"])
    assert again["best"]["w"] == doc["best"]["w"]


def test_classification_on_the_embedded_corpus(root):
    result = run(space=str(root / "space.toml"), task="cls", epsilon=SIZE, steps=3, out=str(root / "cls"),
                 theta=[{"lr": 0.1, "batch_size": 16}])
    doc = json.loads((root / "cls" / "results.json").read_text())
    assert doc["settings"]["config"]["task"] == "cls"
    assert doc["settings"]["data"]["examples"] == 2000
    (r,) = doc["evaluations"]
    assert r["status"] == "ok" and 0 <= r["error"] <= 1 and r["steps"] == 3
    assert result.best is not None


def test_config_file_thetas_are_honoured_and_flags_override(root, capsys):
    cfg = root / "study.toml"
    cfg.write_text(f"""
space = "{root / 'space.toml'}"
epsilon = 4
steps = 3
max_examples = 2000
eval_batches = 1
threads = 1
out = "{root / 'from-file'}"

[[theta]]
lr = 0.05
momentum = 0.5
batch_size = 8

[[theta]]
lr = 0.2
batch_size = 16
""")
    assert main(["extract", "--config", str(cfg), "--steps", "2", "--out", str(root / "flags"), "--quiet"]) == 0
    capsys.readouterr()
    assert not (root / "from-file").exists()
    doc = json.loads((root / "flags" / "results.json").read_text())
    assert doc["settings"]["config"]["steps"] == 2 and doc["settings"]["config"]["epsilon"] == 4
    assert [(r["lr"], r["momentum"], r["batch_size"]) for r in doc["evaluations"]] == \
        [(0.05, 0.5, 8)] * 2 + [(0.2, 0.9, 16)] * 2
    assert all(r["steps"] == 2 for r in doc["evaluations"])
    # --theta replaces the file's Θ.
    assert main(["extract", "--config", str(cfg), "--theta", "lr=0.1,batch_size=8", "--epsilon", "8",
                 "--out", str(root / "theta-flag"), "--quiet"]) == 0
    capsys.readouterr()
    doc = json.loads((root / "theta-flag" / "results.json").read_text())
    assert [(r["lr"], r["batch_size"], r["steps"]) for r in doc["evaluations"]] == [(0.1, 8, 3)]


def test_ose_extract_stays_callable():
    # It once shared its name with the submodule ose/extract.py, which rebound the attribute
    # to the module on first import: a second ose.extract(...) raised TypeError.
    for name in ("ose.cli", "ose.evaluate", "ose.pipeline"):
        importlib.import_module(name)
    assert callable(ose.extract)


def test_groundtruth_ignores_a_config_budget_and_says_so(root, capsys):
    # A budget meant for the config's own strategy; groundtruth is exhaustive, whatever the file says.
    cfg = root / "random.toml"
    cfg.write_text(f'space = "{root / "space.toml"}"\nstrategy = "random"\nbudget = 3\nsteps = 1\n'
                   'max_examples = 2000\neval_batches = 1\nthreads = 1\n'
                   '[[theta]]\nlr = 0.1\nbatch_size = 8\n')
    out = root / "truth"
    assert main(["groundtruth", "--config", str(cfg), "--factor", "2", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"note: groundtruth trains every architecture of Ξ; the budget of 3 in {cfg} is ignored" in printed
    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["config"]["strategy"] == "exhaustive" and doc["settings"]["config"]["budget"] is None
    assert len(doc["evaluations"]) == SIZE and all(r["steps"] == 2 for r in doc["evaluations"])


def test_estimate_before_training_and_one_log_line_per_evaluation_off_a_terminal(root, capsys):
    """stderr is not a terminal under pytest: no bars, but a line per evaluation with a weighted ETA."""
    code = main(["extract", "--space", str(root / "space.toml"), "--epsilon", "3", "--steps", "3", "--max-examples",
                 "2000", "--eval-batches", "1", "--threads", "1", "--out", str(root / "logged")])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""  # no progress bar redrawn into a log
    lines = out.splitlines()
    estimate = next(i for i, line in enumerate(lines) if line.startswith("estimate: "))
    evals = [i for i, line in enumerate(lines) if line.startswith("[")]
    assert len(evals) == 3 and estimate < evals[0]
    assert [lines[i].split("]")[0] for i in evals] == ["[1/3", "[2/3", "[3/3"]
    assert all("ETA " in lines[i] and "ê=" in lines[i] for i in evals)
    assert lines[evals[-1]].endswith("ETA 0m00s")


def test_a_diverging_candidate_is_stored_as_failed_and_the_search_goes_on(root):
    """lr = 1e308 overflows the SGD update (float32 weights) for every candidate: each is a failed
    record with the reason, the study completes, and the command says nothing finished."""
    code = main(["extract", "--space", str(root / "space.toml"), "--epsilon", "4", "--steps", "2", "--theta",
                 "lr=1e308", "--max-examples", "2000", "--eval-batches", "1", "--threads", "1", "--quiet",
                 "--out", str(root / "diverge")])
    doc = json.loads((root / "diverge" / "results.json").read_text())
    assert code == 1 and len(doc["evaluations"]) == 2 and doc["best"] is None
    for r in doc["evaluations"]:
        assert r["status"] == "failed" and "overflowed" in r["message"] and "lr 1e+308 is too large" in r["message"]


def test_a_read_only_output_directory_is_refused_before_any_work(root, tmp_path, capsys):
    import os
    import stat

    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    elif not os.access("/proc/sys", os.W_OK):
        ro = __import__("pathlib").Path("/proc/sys")  # root writes anywhere except a read-only file system
    else:
        pytest.skip("root with no read-only file system to try")
    code = main(["extract", "--space", str(root / "space.toml"), "--quiet", "--out", str(ro / "study")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "cannot write in" in err


def test_the_plan_cuts_xi_in_the_configured_order():
    space = load_space("bert-paper")
    plans = {}
    for sort in ("intermediate", "total"):
        strategy = plan(load_config(None, {"space": "bert-paper", "epsilon": 10, "sort": sort}), space)
        plans[sort] = [c.key for c in strategy.ask(strategy.budget)]
        assert plans[sort] == [c.key for c in representatives(space.candidates(sort), 10)]
    assert len(set(plans["intermediate"]) & set(plans["total"])) == 3
    default = plan(load_config(None, {"space": "bert-paper", "epsilon": 10}), space)
    assert [c.key for c in default.ask(default.budget)] == plans["intermediate"]


def test_an_epsilon_above_xi_plans_one_interval():
    space = load_space("bert-paper")
    strategy = plan(load_config(None, {"space": "bert-paper", "epsilon": 301}), space)
    assert strategy.budget == 1 and [c.key for c in strategy.ask(5)] == [space.candidates()[0].key]


def test_a_space_whose_embeddings_outweigh_its_layers_is_warned_about_before_training(root, tiny_space, capsys):
    # Vocabulary 512, H = 16: A holds (512 + 64 + 2)·16 + 2·16 = 9,280 parameters, a layer B
    # 4(16² + 16) + 2·16 + (16·32 + 32) + (32·16 + 16) + 2·16 = 2,224, and C (pooler and the
    # classifier over the tweets' 3 labels, as the task builds it) 323, so B never outweighs A + C
    # in parameters at D = 1 or 2; in operations it does.
    space = root / "thin.toml"
    space.write_text(tiny_space(H=(16,), I=(32,)))
    code = main(["extract", "--space", str(space), "--task", "cls", "--epsilon", "2", "--steps", "1", "--sort",
                 "total", "--max-examples", "2000", "--eval-batches", "1", "--threads", "1", "--out", str(root / "thin")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    warning = ("note: the FPTAS's (1 − ε) guarantee does not hold for this space (part B costs more than A + C "
               "for 0 of 2 architectures in parameters, 2 of 2 in operations; it assumes all); the search runs the "
               "same and needs no change (docs/SEARCH.md, ABⁿC)")
    assert lines.count(warning) == 1
    first_evaluation = next(i for i, line in enumerate(lines) if line.startswith("[1/1"))
    assert lines.index(warning) < first_evaluation
    doc = json.loads((root / "thin" / "results.json").read_text())
    assert doc["settings"]["config"]["sort"] == "total"


def test_no_warning_where_abnc_holds_or_for_strategies_that_promise_nothing(root, tiny_space):
    (root / "wide.toml").write_text(tiny_space(H=(64,), I=(256,)))
    holds = load_space(root / "wide.toml")
    assert abnc_warning(holds, make_strategy("fptas", holds.candidates(), 1)) is None
    thin = load_space("bert-tiny")  # B outweighs A + C in parameters for 16 of 54
    assert abnc_warning(thin, make_strategy("fptas", thin.candidates(), 3)).startswith(
        "note: the FPTAS's (1 − ε) guarantee does not hold for this space (part B costs more than A + C for 16 of "
        "54 architectures in parameters, 54 of 54")
    for name in ("exhaustive", "random"):
        assert abnc_warning(thin, make_strategy(name, thin.candidates(), 3)) is None


def test_retry_failed_runs_a_failed_evaluation_again_and_keeps_the_failed_record(root, study, monkeypatch, run_cli):
    from ose.store import open_store

    reference, _ = study
    victim = next(r for r in reference.evaluations)
    arch = ",".join(f"{k}={victim[k]}" for k in ("D", "A", "H", "I"))
    out = root / "retry"
    monkeypatch.setenv("OSE_FAULT", f"raise:{arch}")
    failed = run(space=str(root / "space.toml"), epsilon=3, steps=5, theta=THETAS, seed=0, out=str(out))
    assert sum(r["status"] == "failed" for r in failed.evaluations) == 2  # one architecture under both θ
    monkeypatch.delenv("OSE_FAULT")
    again = run(space=str(root / "space.toml"), epsilon=3, steps=5, theta=THETAS, seed=0, out=str(out))
    assert sum(r["status"] == "failed" for r in again.evaluations) == 2  # resuming alone keeps what is stored
    args = ["extract", "--space", root / "space.toml", "--epsilon", "3", "--steps", "5", "--seed", "0", "--quiet",
            "--max-examples", "2000", "--eval-batches", "1", "--threads", "1",
            "--out", out, "--retry-failed", *[a for t in THETAS for a in ("--theta", ",".join(
                f"{k}={v}" for k, v in t.items()))]]
    code, printed, _ = run_cli(*args)
    assert code == 0 and "retrying 2 failed evaluation(s)" in printed

    def table(records):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in records]
    doc = json.loads((out / "results.json").read_text())
    assert table(doc["evaluations"]) == table(reference.evaluations)
    store = open_store(out, readonly=True)
    assert [r["message"] for r in store.retired()] == [f"RuntimeError: injected fault in {arch}"] * 2
    store.close()


def test_a_study_resumed_with_another_thread_count_says_so(root, study):
    lines = []
    ose.extract(space=str(root / "space.toml"), epsilon=3, steps=5, theta=THETAS, seed=0, out=str(root / "a"),
                progress=False, log=lines.append, **{**TINY, "threads": 2})
    assert any(line.startswith("note: this study's evaluations so far ran with 1 thread(s) each, these with 2")
               for line in lines)
    lines.clear()
    run_again = ose.extract(space=str(root / "space.toml"), epsilon=3, steps=5, theta=THETAS, seed=0,
                            out=str(root / "a"), progress=False, log=lines.append, **{**TINY, "threads": 2})
    assert run_again.best is not None and not any("thread(s)" in line for line in lines)


def test_a_data_folder_is_named_file_by_file_at_the_start(root, tiny_space, capsys):
    folder = root / "folder"
    folder.mkdir()
    for name, offset in (("a.jsonl", 0), ("b.jsonl", 1)):
        (folder / name).write_text("".join(json.dumps({"text": f"a short text {i}", "label": (i + offset) % 2}) + "\n"
                                           for i in range(100)))
    (folder / "README.md").write_text("# not data\n")
    space = root / "folder.toml"
    space.write_text(tiny_space(H=(16,), I=(32,)))
    code = main(["extract", "--space", str(space), "--task", "cls", "--data", str(folder), "--epsilon", "2",
                 "--steps", "1", "--theta", "batch_size=8", "--eval-batches", "1", "--threads", "1",
                 "--out", str(root / "folder-out")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].startswith("ose extract: ") and f"data {folder} (200 examples)" in lines[0]
    assert lines[1] == f"data: 2 files from {folder} (a.jsonl, b.jsonl)"
    doc = json.loads((root / "folder-out" / "results.json").read_text())
    assert doc["settings"]["data"]["files"] == 2


def test_repeats_train_each_candidate_from_r_seeds_and_store_the_mean(root, capsys):
    """--repeats 2 --steps 2: each record is the mean of two 2-step runs (``train_repeated``, whose
    averaging tests/test_train.py checks), its W computed from that mean."""
    opts = ["--space", str(root / "space.toml"), "--task", "cls", "--epsilon", str(SIZE), "--theta",
            "lr=0.1,batch_size=16", "--max-examples", "2000", "--eval-batches", "1", "--threads", "1", "--quiet"]
    assert main(["extract", *opts, "--steps", "2", "--repeats", "2", "--out", str(root / "r2")]) == 0
    assert "× r = 2 seeds" in capsys.readouterr().out
    assert main(["extract", *opts, "--steps", "2", "--out", str(root / "r1")]) == 0
    doc = json.loads((root / "r2" / "results.json").read_text())
    (both,), (one,) = doc["evaluations"], json.loads((root / "r1" / "results.json").read_text())["evaluations"]
    assert doc["settings"]["config"]["repeats"] == 2
    assert both["steps"] == 4 and one["steps"] == 2 and [both[k] for k in "DAHI"] == [one[k] for k in "DAHI"]
    assert both["loss"] != pytest.approx(one["loss"])  # not the first run alone
    assert math.isfinite(both["w"]) and both["w"] != pytest.approx(one["w"])


def test_a_study_another_process_moves_into_place_during_the_folder_check_is_not_foreign(tmp_path, monkeypatch):
    """Two runs racing for one fresh --out: the winner's study.db may appear between the loser's
    "is there a study?" and its listing of the folder; it is ose's, not the user's (the loser is then
    refused by the lock or the identity check, with its own line)."""
    from pathlib import Path

    from ose import pipeline
    from ose.config import ConfigError

    for name in ("study.db", "study.db-wal", "study.db-shm", ".study.db.123.x.tmp", "study.lock"):
        (tmp_path / name).write_text("")
    real = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: False if self.name == "study.db" else real(self))
    pipeline._check_foreign(tmp_path)  # the listing saw the study the check had missed
    (tmp_path / "results.csv").write_text("")
    with pytest.raises(ConfigError, match=r"other files \(results.csv\)"):
        pipeline._check_foreign(tmp_path)
