"""ê's interval and the pick's margin over the runner-up, from the rows of B a record keeps."""

import pytest

from ose import jsonout
from ose.report import results
from ose.stats import error_interval, paired_higher, ratio_interval
from ose.strategies.selection import margin

ROWS = 400


def _record(d, wrong, size=0.5, targets=None):
    """A candidate whose W's size factor is ``size`` and which errs on the rows listed in ``wrong``."""
    values = [1 if i in wrong else 0 for i in range(ROWS)]
    error = sum(values) / ROWS
    rows = {"values": values, **({"targets": targets} if targets else {})}
    return {"D": d, "params": 10 * d, "ops": 100 * d, "error": error, "w": size / max(error, 0.5 / ROWS),
            "status": "ok", "lr": 0.1, "steps": 5, "on_b": rows}


def _doc(records):
    settings = {"data": {"heldout_targets": ROWS}, "config": {"metric": "error"}, "error_floor": 0.5 / ROWS}
    return results.document(settings, {"architecture": {"D": 9}, "params": 100, "ops": 1000}, records)


def test_the_error_interval_is_wilson_for_one_target_a_row():
    # 40 wrong of 400: Wilson's 95% interval is [0.0743, 0.1333] (centre 0.1038, half-width 0.0295)
    lo, hi = error_interval({"values": [1] * 40 + [0] * 360}, "error")
    assert (lo, hi) == pytest.approx((0.07430, 0.13331), abs=1e-4)
    assert lo < 0.1 < hi


def test_the_loss_interval_is_the_mean_plus_minus_its_standard_error():
    values = [1.0, 3.0] * 50  # mean 2, sample sd 1.005: se = 0.1005
    lo, hi = ratio_interval(values, [1] * 100)
    assert (lo + hi) / 2 == pytest.approx(2.0)
    assert (hi - lo) / 2 == pytest.approx(1.959964 * (100 / 99 * 100) ** 0.5 / 100, rel=1e-6)
    assert error_interval({"values": values}, "loss") == (lo, hi)


def test_a_candidate_with_the_same_answers_ties_at_one_half_and_a_better_one_wins_always():
    same, worse = [0, 1] * 50, [1] * 100
    shares = paired_higher([same, same, worse], [1] * 100, lambda e: 1 / e)
    assert shares[1] == 0.5 and shares[2] == 1.0


def test_pairing_makes_a_consistent_small_gain_certain():
    # Both err on the same rows but the pick on 6 fewer: a paired resample keeps it ahead unless it
    # draws none of those 6 rows (a tie, (394/400)^400 ≈ 0.0024, counted half), although each error
    # rate alone is uncertain by about ±0.03.
    pick = _record(1, set(range(94)))
    other = _record(2, set(range(100)))
    m = margin([pick, other], pick, 0.5 / ROWS)
    assert 0.997 < m["p_higher"] < 1.0 and m["ties"] == []


def test_near_equals_tie_within_noise_and_the_summary_says_so():
    pick = _record(1, set(range(0, 100)), size=0.5)
    close = _record(2, set(range(3, 104)), size=0.5)   # one more wrong row, other rows: a coin toss
    far = _record(3, set(range(0, 200)), size=0.5)     # twice the errors: beaten on every resample
    doc = _doc([pick, close, far])
    assert doc["best"]["D"] == 1
    m = doc["margin"]
    assert m["runner_up"]["D"] == 2 and 0.4 < m["p_higher"] < 0.95
    assert [t["D"] for t in m["ties"]] == [2]
    tie = results.tie_line(doc)
    assert tie.startswith("tie: within B's noise the pick ties 1 other candidate(s), ⟨D=2⟩")
    assert "the highest W measured on this B chose" in tie
    assert tie in results.summary(doc) and results.margin_line(doc) in results.summary(doc)


def test_a_clear_pick_has_no_tie_sentence_and_the_document_keeps_no_rows():
    doc = _doc([_record(1, set(range(40))), _record(2, set(range(120)))])
    assert doc["margin"]["p_higher"] == 1.0 and results.tie_line(doc) is None
    assert "margin: the pick's ê 0.1000 [0.074" in results.margin_line(doc)
    text = jsonout.dumps(doc)
    assert "on_b" not in text and "error_interval_95" in text
    assert doc["evaluations"][0]["error_interval_95"] == pytest.approx([0.07430, 0.13331], abs=1e-4)


def test_records_without_rows_of_b_have_no_margin():
    plain = [{k: v for k, v in _record(d, set(range(10 * d))).items() if k != "on_b"} for d in (1, 2)]
    doc = _doc(plain)
    assert "margin" not in doc and results.margin_line(doc) is None
    assert "error_interval_95" not in doc["evaluations"][0]


def test_an_extraction_keeps_b_rows_in_the_store_and_reports_intervals_and_margin(tmp_path, tiny_space, monkeypatch):
    import json

    import ose
    from ose.store import open_store

    (tmp_path / "space.toml").write_text(tiny_space())
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    said = []
    ose.extract(space=str(tmp_path / "space.toml"), epsilon=1, steps=2, max_examples=500, eval_batches=1, threads=1,
                theta=[{"batch_size": 8}], out=str(tmp_path / "out"), progress=False, log=said.append)
    store = open_store(tmp_path / "out", readonly=True)
    try:
        stored = [r for r in store.records() if r.get("status") == "ok" and not r["key"].startswith("T|")]
    finally:
        store.close()
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    for r in stored:  # MLM rows hold several masked tokens: the counts are kept with each row's targets
        rows = r["on_b"]
        assert sum(rows["values"]) / sum(rows["targets"]) == pytest.approx(r["error"])
    for r in doc["evaluations"]:
        lo, hi = r["error_interval_95"]
        assert lo <= r["error"] <= hi and (lo < hi or r["error"] in (0, 1)) and "on_b" not in r
    assert doc["margin"]["rows"] == len(stored[0]["on_b"]["values"])
    assert any(line.startswith("margin: the pick's ê") for text in said for line in text.splitlines())
    assert "margin: the pick" in (tmp_path / "out" / "report.html").read_text()


def test_objective_accuracy_picks_the_lowest_error_and_its_margin_compares_errors():
    cheap = _record(1, set(range(120)), size=0.9)   # the highest W: small and fairly accurate
    exact = _record(2, set(range(40)), size=0.1)    # the most accurate, large
    close = _record(3, set(range(2, 44)), size=0.1)  # as accurate within noise
    settings = {"data": {"heldout_targets": ROWS}, "config": {"metric": "error", "objective": "accuracy"},
                "error_floor": 0.5 / ROWS}
    doc = results.document(settings, {"architecture": {"D": 9}, "params": 100, "ops": 1000}, [cheap, exact, close])
    assert doc["best"]["D"] == 2 and _doc([cheap, exact, close])["best"]["D"] == 1  # W's pick is the cheap one
    m = doc["margin"]
    assert m["runner_up"]["D"] == 3 and [t["D"] for t in m["ties"]] == [3] and 0.5 < m["p_higher"] < 0.95
    assert "its ê is lower than the runner-up ⟨D=3⟩'s (0.1050)" in results.margin_line(doc)
    assert "the lowest ê measured on this B chose" in results.tie_line(doc)
    assert results.pick_line(doc).endswith("(--objective accuracy: the lowest ê of the candidates within the budgets)")


def test_a_train_loss_study_resamples_the_last_quarter_of_its_steps(tmp_path, tiny_space, monkeypatch):
    import json

    import ose

    (tmp_path / "space.toml").write_text(tiny_space())
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    result = ose.extract(space=str(tmp_path / "space.toml"), epsilon=1, steps=8, max_examples=500, eval_batches=1,
                         threads=1, metric="train-loss", theta=[{"batch_size": 8}], out=str(tmp_path / "out"),
                         progress=False, log=lambda *a: None)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    done = [r for r in doc["evaluations"] if r["status"] == "ok"]
    for r in done:  # ê is the last quarter's mean, an interval around it, and the other proxies stored beside
        assert r["error"] == r["train_loss_tail"] and r["loss"] != r["error"]
        lo, hi = r["error_interval_95"]
        assert lo < r["error"] < hi
    assert doc["margin"]["rows"] == 2 and result.best is not None  # 8 // 4 steps, paired by step
    from ose.report.results import margin_line

    line = margin_line(doc)  # the summary names what was resampled: the steps, not B
    assert "(95%, 2 training steps of the last quarter)" in line and line.endswith("paired resamples of those steps")
