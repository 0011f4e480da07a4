"""What ose distil's card states of a final training run: where it stopped, and why."""

from ose.distil import Trained
from ose.train import EarlyStop, Measured


def _run(steps_cap: int, steps: int, history: list) -> Trained:
    stop = EarlyStop(lambda: 0.0, None, every=10, patience=3)
    stop.history, stop.best_step = history, max(history, key=lambda h: h[1])[0]
    test = Measured(correct=70, targets=100, loss=0.8, correct_by_row=[1.0] * 70 + [0.0] * 30,
                    targets_by_row=[1] * 100)
    return Trained(None, {"steps": steps_cap}, steps, stop, test)


def test_a_run_the_cap_stopped_says_how_far_it_still_rose():
    record = _run(40, 40, [[10, 0.50], [20, 0.60], [30, 0.62], [40, 0.66]]).record()
    assert record["stopped"] == "the cap" and record["best_step"] == 40
    assert abs(record["still_rising"] - 0.06) < 1e-12  # best of steps 30-40 over best of steps 10-20


def test_a_run_its_validation_stopped_says_so_and_claims_no_rise():
    trained = _run(100, 50, [[10, 0.5], [20, 0.7], [30, 0.6], [40, 0.6], [50, 0.65]])
    record = trained.record()
    assert record["stopped"] == "validation accuracy stopped improving" and "still_rising" not in record
    assert record["best_step"] == 20 and "50 steps (validation accuracy stopped improving; best at step 20)" in \
        trained.summary()
    assert "test accuracy 0.7000 [0.6" in trained.summary() and "over 100 targets" in trained.summary()
