"""What the summary says beside the table: T from a checkpoint, and when ê does not separate."""

from ose.report import results


def _doc(errors, targets=512, majority=0.55, source=None, reference=None):
    evaluations = [{"D": i + 1, "params": 10 * (i + 1), "ops": 100 * (i + 1), "error": e, "w": 1.0 / (i + 1),
                    "status": "ok", "lr": 0.1, "steps": 5} for i, e in enumerate(errors)]
    t = {"architecture": {"D": 9}, "params": 100, "ops": 1000, **({"reference": reference} if reference else {})}
    settings = {"data": {"heldout_targets": targets, "majority_error": majority}, "config": {"metric": "error"},
                **({"source": source, "init": "inherit"} if source else {})}
    return {**results.document(settings, t, evaluations)}


def test_chance_level_is_named():
    warning = results.separation(_doc([0.55, 0.551, 0.56]))
    assert warning and "at chance" in warning and "0.550" in warning
    assert warning.endswith("W ranks them by size alone: train longer (--steps) or start from a pretrained T (--from)")


def test_chance_level_from_a_checkpoint_does_not_suggest_from():
    warning = results.separation(_doc([0.55, 0.551, 0.56], source={"from": "tiny-bert"}))
    assert warning.endswith("W ranks them by size alone: train longer (--steps)") and "--from" not in warning


def test_a_spread_within_the_noise_of_b_is_named():
    # σ = sqrt(0.4 · 0.6 / 512) ≈ 0.0217: a spread of 0.02 is noise, one of 0.12 is not.
    warning = results.separation(_doc([0.40, 0.41, 0.42]))
    assert warning and "within the sampling noise of B" in warning and "512 targets" in warning
    assert results.separation(_doc([0.36, 0.42, 0.48])) is None


def test_the_source_line_says_what_the_pick_keeps_of_t():
    doc = _doc([0.36, 0.48], source={"from": "tiny-bert"}, reference={"status": "ok", "error": 0.2, "steps": 5})
    line = results.source_line(doc)
    assert line.startswith("T: tiny-bert ⟨D=9⟩") and "T's own ê after 5 steps: 0.2000" in line
    assert "keeps 80% of T's accuracy" in line  # the pick has ê 0.36: 0.64 / 0.80
    assert results.source_line(_doc([0.3])) is None
    assert "T: tiny-bert" in results.summary(doc)
    # a training-loss ê is no error rate: the line gives the pick's size, no share of T's accuracy
    doc["settings"]["config"]["metric"] = "train-loss"
    line = results.source_line(doc)
    assert "accuracy" not in line and line.endswith("the pick has 10% of its parameters and 10.0% of its operations")
