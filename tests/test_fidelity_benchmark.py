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
    again = fidelity.main(args + ["--variants", "teacher"])
    assert "# final 1/" not in capsys.readouterr().out
    assert json.dumps(again["rho"][:len(report["rho"])]) == json.dumps(report["rho"])
    assert again["ceiling"] == report["ceiling"]
    variant = json.loads((tmp_path / "fid" / "variant-teacher" / "results.json").read_text())
    kl = {fidelity.key(r): r["kl"] for r in variant["evaluations"]}
    row = next(r for r in again["rho"] if r["proxy"] == "KL from T on B, teacher")
    assert row["rho"] == pytest.approx(spearman([kl[k] for k in keys], [final[k] for k in keys]))
