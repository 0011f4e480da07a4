"""Time estimates: weighted by each job's work, rescaled by what finished evaluations measured."""

import pytest

from ose.estimate import StepCost, duration, remaining_seconds
from ose.store import open_store
from ose.study import status


def test_the_jobs_left_count_by_their_work_not_their_number():
    # One job of work 1 took 10 s; one of work 1000 is left: it takes about 10,000 s, not 10.
    assert remaining_seconds([(1.0, 10.0)], [1000.0], steps=5, parallel=1) == pytest.approx(10_000.0)


def test_a_calibrated_step_cost_predicts_before_anything_finishes():
    cost = StepCost(fixed=0.5, per_work=0.01)
    # 3 jobs of 10 steps: 10 × (0.5 + 0.01 w) each.
    assert remaining_seconds([], [0.0, 100.0, 1000.0], steps=10, parallel=1, cost=cost) == pytest.approx(
        10 * 0.5 + 10 * 1.5 + 10 * 10.5)
    assert remaining_seconds([], [1.0], steps=10, parallel=1) is None  # no cost, nothing done: unknown


def test_measured_time_rescales_the_prediction_and_workers_share_the_rest():
    cost = StepCost(fixed=0.0, per_work=1.0)
    # The finished job took twice its prediction: the rest is predicted twice as long, over 2 workers.
    eta = remaining_seconds([(10.0, 2 * 10 * 10.0)], [10.0, 10.0, 10.0, 10.0], steps=10, parallel=2, cost=cost)
    assert eta == pytest.approx(4 * 200.0 / 2)
    # Never less than the longest job left, however many workers.
    assert remaining_seconds([(1.0, 1.0)], [100.0], steps=1, parallel=8) == pytest.approx(100.0)


def test_duration_text():
    assert duration(None) == "unknown" and duration(61) == "1m01s" and duration(3 * 3600 + 125) == "3h02m05s"


def _record(D, ops, seconds):
    return {"D": D, "A": 2, "H": 16, "I": 32, "lr": 0.1, "momentum": 0.9, "batch_size": 2, "params": 10,
            "ops": ops, "error": 0.5, "w": 1.0, "seconds": seconds, "status": "ok", "message": ""}


def test_status_weights_the_eta_by_the_work_noted_by_the_run(tmp_path):
    """The cheap job finished in 3 s; the dear one left has 100× its work: about 300 s, not 3."""
    meta = {"settings": {"space": {"parameters": {"D": [1, 2], "A": [2], "H": [16], "I": [32]}}},
            "jobs": ["cheap", "dear"], "total": 2, "created_at": 0.0, "maximum_point": {}}
    store = open_store(tmp_path, meta=meta)
    store.add("cheap", _record(1, 5, 3.0), {}, {})
    store.set_note("run", {"work": {"cheap": 10.0, "dear": 1000.0}, "mean_work": 505.0, "steps": 4, "parallel": 1,
                           "step_cost": None})
    store.close()
    st = status(tmp_path)
    assert st["done"] == 1 and st["remaining"] == 1 and st["running"] is None
    assert st["eta_s"] == pytest.approx(300.0)
