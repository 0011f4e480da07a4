"""benchmarks/value.py: each hand-chosen arm is the candidate its rule names within the budget, and
the --quick run reads every arm's accuracy from the stored final runs (reused on a second run)."""

import importlib.util
import json
import random
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "value.py"
T = {"D": 4, "A": 4, "H": 64, "I": 256}
NAMES = ("D", "A", "H", "I")


def _value():
    spec = importlib.util.spec_from_file_location("value", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _key(r):
    return ",".join(f"{n}={r[n]}" for n in NAMES)


def _records():
    """Eight candidates with made-up errors and latencies (ms)."""
    rows = [  # D, A, H, I, params, error, ms
        (1, 4, 64, 256, 300, 0.30, 2.0), (2, 4, 64, 256, 400, 0.28, 4.0), (3, 4, 64, 256, 500, 0.35, 6.0),
        (4, 2, 32, 128, 350, 0.33, 5.0), (4, 4, 32, 128, 380, 0.31, 5.5), (4, 4, 64, 128, 450, 0.29, 7.0),
        (1, 2, 32, 128, 100, 0.40, 1.0), (2, 2, 32, 256, 200, 0.27, 3.0)]
    records = [{"D": d, "A": a, "H": h, "I": i, "params": p, "ops": 10 * p, "error": e, "status": "ok"} for d, a, h, i, p, e, _ in rows]
    return records, {_key(r): ms for r, (*_, ms) in zip(records, rows)}


def test_each_arm_is_the_candidate_its_rule_names_within_the_budget():
    value = _value()
    records, ms = _records()
    arms = value.choose(records, ms, 5.5, T, NAMES, random.Random(0))
    assert _key(arms["ose"]) == "D=2,A=2,H=32,I=256"          # the lowest error of those within 5.5 ms
    assert _key(arms["layers"]) == "D=2,A=4,H=64,I=256"       # the deepest at T's full width (D=3 takes 6 ms)
    assert _key(arms["width"]) == "D=4,A=4,H=32,I=128"        # T's depth, the most parameters that fit
    assert _key(arms["largest"]) == "D=2,A=4,H=64,I=256"      # the most parameters of all that fit
    drawn = [arms[f"random {n}"] for n in (1, 2, 3)]
    assert len({_key(r) for r in drawn}) == 3 and all(ms[_key(r)] <= 5.5 for r in drawn)
    # the limit is inclusive, and where nothing of an arm's kind fits the arm is empty
    tight = value.choose(records, ms, 2.0, T, NAMES, random.Random(0))
    assert _key(tight["ose"]) == "D=1,A=4,H=64,I=256" and tight["layers"]["D"] == 1 and tight["width"] is None
    assert tight["random 3"] is None
    assert all(r is None for r in value.choose(records, ms, 0.5, T, NAMES, random.Random(0)).values())
    # ose's arm ranks by the ê it is given, and hands back the candidate's own record
    ranked = [{**r, "error": -r["error"]} for r in records]
    flipped = value.choose(records, ms, 5.5, T, NAMES, random.Random(0), ranked)
    fits = [r for r in records if ms[_key(r)] <= 5.5]
    assert flipped["ose"] is max(fits, key=lambda r: r["error"]) and flipped["layers"] is arms["layers"]


def test_the_verdict_compares_with_the_test_sets_interval():
    value = _value()
    ose = value.accuracy_of([0.30], 2000)  # 0.70 ± 0.020
    rows = {"ose": ose, "layers": value.accuracy_of([0.285], 2000), "width": value.accuracy_of([0.26], 2000),
            "largest": value.accuracy_of([0.35], 2000), "random 1": None}
    v = value.verdict(rows)
    assert v == {"behind": ["width"], "ahead": ["largest"], "ahead_beyond_interval": ["largest"]}
    assert ose["interval"] == pytest.approx([0.7 - 1.96 * (0.21 / 2000) ** 0.5, 0.7 + 1.96 * (0.21 / 2000) ** 0.5],
                                            abs=1e-4)
    two = value.accuracy_of([0.30, 0.20], 1000)
    assert two["accuracy"] == pytest.approx(0.75) and two["by_seed"] == pytest.approx([0.7, 0.8])


def test_quick_value_reads_every_arm_from_the_stored_final_runs_and_resumes(tmp_path, bert_checkpoint, capsys,
                                                                           monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    value = _value()
    args = ["--quick", "--from", str(bert_checkpoint), "--fidelity", str(tmp_path / "fid"), "--out",
            str(tmp_path / "val"), "--seeds", "0", "--budgets", "60,100", "--repeats", "2"]
    report = value.main(args)
    capsys.readouterr()
    finals = {f["key"]: f["error"] for f in map(json.loads, (tmp_path / "fid" / "finals.jsonl").read_text().splitlines())}
    doc = json.loads((tmp_path / "fid" / "study" / "results.json").read_text())
    short = {_key(r): r["error"] for r in doc["evaluations"] if r["status"] == "ok"}
    lat = json.loads((tmp_path / "val" / "latency.json").read_text())
    t_ms = 1000 * lat["maximum_point"]["latency"]["1"]
    assert report["t_latency_ms"] == pytest.approx(t_ms)
    for row in report["table"]:
        k = _key(row["architecture"])
        assert row["accuracy"] == pytest.approx(1 - finals[k]) and row["latency_ms"] <= row["budget"] / 100 * t_ms
    ms = {_key(a): 1000 * a["latency"]["1"] for a in lat["architectures"]}
    half = json.loads((tmp_path / "fid" / "variant-half" / "results.json").read_text())
    tail = {_key(r): r["train_loss_tail"] for r in half["evaluations"] if r["status"] == "ok"}
    assert report["ose_proxy"] == "default" and set(tail) == set(short)
    for budget in (60, 100):
        fits = [k for k in short if ms[k] <= budget / 100 * t_ms]
        mine = next(r for r in report["table"] if r["budget"] == budget and r["arm"] == "ose")
        # ose's arm ranks by ose's default ê with inherited weights: the half study's last-quarter training loss
        assert fits and tail[_key(mine["architecture"])] == min(tail[k] for k in fits)
    # a second run trains nothing: the same table from the stored runs
    again = value.main(args)
    assert "# final 1/" not in capsys.readouterr().out and again["table"] == report["table"]
