"""ê = 0 on B: W divides by a floor, half of one of B's targets, so it stays finite; the study
stores the floor, the summary and the report say which evaluations it applied to, and the pick
among equal W follows a stated rule."""

import json

import pytest

import ose
from ose.costs import error_floor, w_coefficient
from ose.report import results
from ose.strategies.selection import best


def _refuse(constant):
    raise ValueError(f"not JSON: {constant}")


def strict(text: str):
    return json.loads(text, parse_constant=_refuse)


def test_w_divides_by_the_floor_where_e_is_below_it():
    assert error_floor(128) == 0.5 / 128
    assert w_coefficient(50, 500, 0.0, 100, 1000, floor=0.01) == pytest.approx(0.25 / 0.01)
    assert w_coefficient(50, 500, 0.2, 100, 1000, floor=0.01) == pytest.approx(0.25 / 0.2)
    assert w_coefficient(50, 500, 0.0, 100, 1000) == float("inf")  # the public function without a floor


def test_equal_w_goes_to_the_smaller_p_then_the_smaller_i_then_the_first():
    records = [{"w": 2.0, "params": 10, "ops": 5, "status": "ok", "n": 0},
               {"w": 2.0, "params": 8, "ops": 9, "status": "ok", "n": 1},
               {"w": 2.0, "params": 8, "ops": 7, "status": "ok", "n": 2},
               {"w": 2.0, "params": 8, "ops": 7, "status": "ok", "n": 3},
               {"w": 1.0, "params": 1, "ops": 1, "status": "ok", "n": 4}]
    assert best(records)["n"] == 2


def test_a_record_scored_before_the_floor_is_scored_again_with_it():
    # A study made before W had a floor stored W = ∞ for ê = 0 and no error_floor; B's size gives it.
    settings = {"data": {"heldout_targets": 100}, "config": {"metric": "error"}}
    t = {"architecture": {"D": 9}, "params": 100, "ops": 1000}
    old = [{"D": 1, "params": 50, "ops": 500, "error": 0.0, "w": float("inf"), "status": "ok", "lr": 0.1, "steps": 5},
           {"D": 2, "params": 60, "ops": 600, "error": 0.1, "w": 1.6, "status": "ok", "lr": 0.1, "steps": 5}]
    doc = results.document(settings, t, old)
    assert doc["evaluations"][0]["w"] == pytest.approx(0.25 / 0.005) and doc["best"]["D"] == 1
    assert strict(json.dumps(doc, allow_nan=False))["best"]["w"] == pytest.approx(50.0)
    assert "below its floor for 1 evaluation(s) (D=1)" in results.summary(doc)


def test_a_study_whose_candidates_err_nowhere_on_b_has_finite_w(tmp_path, tiny_space, monkeypatch):
    from ose.train import TrainResult

    (tmp_path / "space.toml").write_text(tiny_space())
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    # every candidate right on every target of B: W used to be ∞ for all, the pick among them unexplained
    monkeypatch.setattr("ose.evaluate.train_repeated", lambda *a, **k: TrainResult(0.0, 0.01, 0.02, 1, 0.0))
    said = []
    result = ose.extract(space=str(tmp_path / "space.toml"), epsilon=1, steps=1, max_examples=500, eval_batches=1,
                         threads=1, theta=[{"batch_size": 8}], out=str(tmp_path / "out"), progress=False,
                         log=said.append)
    doc = strict((tmp_path / "out" / "results.json").read_text())
    floor = doc["settings"]["error_floor"]
    assert floor == 0.5 / doc["settings"]["data"]["heldout_targets"]
    t = doc["maximum_point"]
    for r in doc["evaluations"]:
        gain = (1 - r["params"] / t["params"]) * (1 - r["ops"] / t["ops"])
        assert r["error"] == 0.0 and r["w"] == pytest.approx(gain / floor)
    assert doc["best"] == max(doc["evaluations"], key=lambda r: r["w"])
    assert doc["best"]["params"] == min(r["params"] for r in doc["evaluations"])  # the smallest: the largest gain
    assert result.best["w"] == doc["best"]["w"]
    notes = [line for text in said for line in text.splitlines() if "below its floor" in line]
    shown = "; ".join(" ".join(f"{n}={r[n]}" for n in "DAHI") for r in doc["evaluations"][:3])
    assert notes == [f"note: ê on B was below its floor for 8 evaluation(s) ({shown} and 5 more): W divides by the "
                     f"floor, {floor:.3g} (half of one of B's targets), so these rank by p and i alone (docs/SEARCH.md)"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert f"/ {floor:.4g} = {doc['best']['w']:.4g}. Its ê on B was 0, below the study" in page
