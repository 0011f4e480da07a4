"""ose distil --keep F: the pick, then cheaper candidates predicted to keep F of T's accuracy, until one is verified."""

import json

import pytest

import ose
from ose.distil import keep_order


def _doc(errors_and_ops, reference_error=0.2):
    evaluations = [{"D": d, "params": 10 * ops, "ops": ops, "error": e, "w": 1.0 / (i + 1), "status": "ok"}
                   for i, (d, e, ops) in enumerate(errors_and_ops)]
    return {"settings": {"config": {"metric": "error"}}, "evaluations": evaluations, "best": evaluations[0],
            "maximum_point": {"architecture": {"D": 9}, "reference": {"status": "ok", "error": reference_error}}}


def test_the_order_is_the_pick_then_the_cheapest_predicted_to_keep_the_floor():
    # T's short-run accuracy 0.8: a floor of 0.9 needs 0.72, that is ê ≤ 0.28 (D=3 at 0.30 misses it)
    doc = _doc([(1, 0.40, 50), (2, 0.25, 300), (3, 0.30, 100), (4, 0.20, 200), (5, 0.27, 400)])
    assert [r["D"] for r in keep_order(doc, 0.9)] == [1, 4, 2, 5]
    assert [r["D"] for r in keep_order(doc, 0.5)] == [1, 3, 4, 2, 5]


@pytest.fixture(scope="module")
def study(tmp_path_factory, bert_checkpoint):
    root = tmp_path_factory.mktemp("keep")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OSE_CACHE", str(root / "cache"))
        ose.extract(source=str(bert_checkpoint), task="cls", seq_len=32, epsilon=8, steps=6, max_examples=2000,
                    eval_batches=2, threads=1, out=str(root / "run"), progress=False, log=lambda *a: None)
    return root / "run"


def test_keep_stops_at_the_first_verified_model_and_says_so(study, run_cli, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(study, run)
    code, out, err = run_cli("distil", run, "--steps", 3, "--keep", "0.01", "--quiet", "--onnx")
    assert code == 0, err
    card = json.loads((run / "model" / "ose.json").read_text())
    assert (run / "model" / "model.onnx").is_file() and card["onnx"]["max_abs_diff"] <= 1e-3  # the verified one
    assert card["keep"]["floor"] == 0.01 and card["keep"]["verified"] is True
    assert card["keep"]["ratio"] == pytest.approx(card["model"]["accuracy"] / card["T"]["accuracy"])
    assert "verified: " in out and "after 1 distillation(s)" in out
    assert "**Accuracy floor**" in (run / "model" / "README.md").read_text()


def test_keep_goes_on_until_the_floor_is_met_or_exits_1(study, run_cli, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(study, run)
    code, out, err = run_cli("distil", run, "--steps", 3, "--keep", "1", "--quiet")
    cards = [json.loads(p.read_text()) for p in sorted(run.glob("model*/ose.json"))]
    assert cards and all(c["keep"]["floor"] == 1.0 for c in cards)
    met = [c for c in cards if c["keep"]["ratio"] >= 1]
    if code == 0:  # the last one distilled meets the floor, every earlier one missed it
        assert len(met) == 1 and "verified: " in out
    else:
        assert code == 1 and not met and err.startswith("ose: no candidate kept 1 of T's test accuracy")
    # a rerun distils nothing again: every run's saved state is reused
    code2, out2, _ = run_cli("distil", run, "--steps", 3, "--keep", "1")
    assert code2 == code and out2.count("trained earlier, reused") >= len(cards)


def test_keep_refuses_what_it_cannot_verify(study, run_cli, tiny_space, tmp_path):
    for args, says in ((["--keep", "1.5"], "--keep must be a share of T's accuracy in (0, 1]"),
                       (["--keep", "0.9", "--pick", "1"], "--keep chooses the candidates itself")):
        code, _, err = run_cli("distil", study, "--steps", 2, *args)
        assert code == 2 and err.count("\n") == 1 and says in err, err
    (tmp_path / "space.toml").write_text(tiny_space())
    ose.extract(space=str(tmp_path / "space.toml"), task="cls", epsilon=8, steps=2, max_examples=1500,
                eval_batches=1, threads=1, out=str(tmp_path / "scratch"), progress=False, log=lambda *a: None)
    code, _, err = run_cli("distil", tmp_path / "scratch", "--steps", 2, "--keep", "0.9")
    assert code == 2 and "has no pretrained T" in err
