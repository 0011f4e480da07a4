"""benchmarks/fidelity.py --quick on a small local checkpoint: the figures it prints are computed
from real short and final runs, and a second run resumes from what the first stored."""

import importlib.util
import json
from pathlib import Path

import pytest

from ose.stats import spearman

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "fidelity.py"


def _fidelity():
    spec = importlib.util.spec_from_file_location("fidelity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_fidelity_runs_resumes_and_its_figures_come_from_the_stored_runs(tmp_path, bert_checkpoint, capsys,
                                                                                monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    fidelity = _fidelity()
    args = ["--quick", "--from", str(bert_checkpoint), "--out", str(tmp_path / "fid"), "--resamples", "200",
            "--figure", str(tmp_path / "fid.png")]
    report = fidelity.main(args)
    first = capsys.readouterr().out
    finals = [json.loads(line) for line in (tmp_path / "fid" / "finals.jsonl").read_text().splitlines()]
    assert len(finals) == 2 * 12 and {f["seed"] for f in finals} == {0, 1}
    # ρ(proxy, final) is Spearman's ρ of the stored short-run numbers against the stored seed-0 finals
    # (the cross-entropy: on this random checkpoint every candidate's error rate on B is the same)
    doc = json.loads((tmp_path / "fid" / "study" / "results.json").read_text())
    short = {fidelity.key(r): r["loss"] for r in doc["evaluations"]}
    final = {f["key"]: f["error"] for f in finals if f["seed"] == 0}
    keys = sorted(final)
    row = next(r for r in report["rho"] if r["proxy"] == "cross-entropy on B")
    assert row["n"] == 12 and row["rho"] == pytest.approx(spearman([short[k] for k in keys], [final[k] for k in keys]))
    lo, hi = row["interval"]
    assert lo <= hi
    assert report["ceiling"]["n"] == 12 and "ceiling: ρ(final seed 1, final)" in first
    assert (tmp_path / "fid.png").stat().st_size > 0
    assert {r["proxy"] for r in report["rho"]} >= {"training loss, last quarter mean", "−p (larger, lower error)"}
    # a second run trains no final run: the same figures from the stored runs, and a variant study's
    # proxies beside them (distillation during the search stores the divergence from T)
    again = fidelity.main(args + ["--variants", "teacher,repeats2"])
    assert "# final 1/" not in capsys.readouterr().out
    assert json.dumps(again["rho"][:len(report["rho"])]) == json.dumps(report["rho"])
    assert again["ceiling"] == report["ceiling"]
    variant = json.loads((tmp_path / "fid" / "variant-teacher" / "results.json").read_text())
    kl = {fidelity.key(r): r["kl"] for r in variant["evaluations"]}
    row = next(r for r in again["rho"] if r["proxy"] == "KL from T on B, teacher")
    assert row["rho"] == pytest.approx(spearman([kl[k] for k in keys], [final[k] for k in keys]))
    # two seeds at half the steps: each record is two runs of 5 // 2 steps
    repeated = json.loads((tmp_path / "fid" / "variant-repeats2" / "results.json").read_text())
    assert repeated["settings"]["config"]["repeats"] == 2 and {r["steps"] for r in repeated["evaluations"]} == {4}
    # against the mean of the two seeds' finals, and its difference from ê's ρ
    mean = {f["key"]: sum(g["error"] for g in finals if g["key"] == f["key"]) / 2 for f in finals}
    row = next(r for r in again["rho_mean_final"] if r["proxy"] == "cross-entropy on B")
    ys = [mean[k] for k in keys]
    errors = {fidelity.key(r): r["error"] for r in doc["evaluations"]}
    assert row["rho"] == pytest.approx(spearman([short[k] for k in keys], ys))
    assert row["delta_vs_error"] == pytest.approx(row["rho"] - spearman([errors[k] for k in keys], ys), nan_ok=True)
    assert again["attenuation"]["one_seed"][0] == pytest.approx(fidelity.attenuation(again["ceiling"]["rho"], 1))


def test_a_perfect_proxys_bound_follows_from_the_seed_to_seed_rho():
    fidelity = _fidelity()
    assert fidelity.attenuation(0.49, 1) == pytest.approx(0.7)
    assert fidelity.attenuation(0.49, 2) == pytest.approx((0.98 / 1.49) ** 0.5)
    assert fidelity.attenuation(1.0, 2) == 1.0 and fidelity.attenuation(-0.2, 1) == 0.0


def test_against_the_mean_finals_each_proxys_rho_and_its_paired_difference_from_the_error_rate():
    from argparse import Namespace

    fidelity = _fidelity()
    errors, losses = [0.3, 0.1, 0.4, 0.2, 0.6, 0.5], [1.0, 2.0, 3.0, 4.0, 6.0, 5.0]
    records = [{"D": i + 1, "A": 1, "H": 8, "I": 8, "error": e, "loss": l, "params_effective": 100 + i}
               for i, (e, l) in enumerate(zip(errors, losses))]
    keys = [fidelity.key(r) for r in records]
    final = {0: dict(zip(keys, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])), 1: dict(zip(keys, [0.3, 0.2, 0.1, 0.4, 0.6, 0.5]))}
    mean = [(final[0][k] + final[1][k]) / 2 for k in keys]
    proxies = {fidelity.FIELDS["error"]: ("error", records), "cross-entropy on B": ("loss", records)}
    out = fidelity.against_mean(Namespace(seeds=[0, 1], resamples=200), proxies, final,
                                {"rho": 0.5, "interval": [0.1, 0.8]}, {k: 100.0 for k in keys})
    ce = next(r for r in out["rho_mean_final"] if r["proxy"] == "cross-entropy on B")
    assert ce["rho"] == pytest.approx(spearman(losses, mean))
    assert ce["delta_vs_error"] == pytest.approx(spearman(losses, mean) - spearman(errors, mean)) != 0
    lo, hi = ce["delta_interval"]
    assert lo <= ce["delta_vs_error"] <= hi
    assert out["attenuation"]["mean_of_2"][0] == pytest.approx(fidelity.attenuation(0.5, 2))
    assert len(out["pairs_mean_final"]) == 2  # every pair is within 1.25× here
