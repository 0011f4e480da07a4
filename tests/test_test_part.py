"""The test part a user can bring and size: ``--test-data FILE`` (every final number measured on it)
and ``--heldout-fraction``; the banner states |B| and the test part's size, and warns when the test
part is too small to say much."""

import json

import pytest

from ose.config import ExtractConfig
from ose.data import read_examples


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_space):
    root = tmp_path_factory.mktemp("test-part")
    (root / "space.toml").write_text(tiny_space())
    examples = read_examples(ExtractConfig(max_examples=1600))
    rows = [json.dumps({"text": e.text, "label": e.label}) + "\n" for e in examples]
    (root / "train.jsonl").write_text("".join(r for i, r in enumerate(rows) if i % 4))  # every label in both
    (root / "test.jsonl").write_text("".join(rows[::4]))
    (root / "odd.jsonl").write_text(json.dumps({"text": "hello there", "label": "surprised"}) + "\n")
    return root


def _extract(run_cli, files, out, *extra):
    return run_cli("extract", "--space", files / "space.toml", "--task", "cls", "--data", files / "train.jsonl",
                   "--epsilon", 8, "--steps", 2, "--eval-batches", 1, "--threads", 1, "--out", out, "--quiet", *extra)


def test_own_test_data_is_what_distil_measures_on(run_cli, files, tmp_path):
    from ose.distil import distil
    from ose.errors import DataError

    test = tmp_path / "test.jsonl"
    test.write_text((files / "test.jsonl").read_text())
    code, out, err = _extract(run_cli, files, tmp_path / "run", "--test-data", test)
    assert code == 0, err
    assert "B: 32 examples (32 examples), what the search selects on; test part: 400 examples (--test-data)" in out
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["settings"]["data"]["test_data"]["rows"] == 400 and doc["settings"]["data"]["test_rows"] == 400
    assert doc["settings"]["inputs"]["test_data"] == str(test.resolve())
    result = distil(tmp_path / "run", steps=2, log=lambda *a: None)
    assert result.card["test"]["rows"] == 400 and result.card["test"]["what"] == "the examples of test.jsonl (--test-data)"
    # The file changed since: distil refuses to measure on other examples than the study recorded.
    test.write_text("".join(test.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DataError, match="the test data changed since the study ran"):
        distil(tmp_path / "run", steps=2, out=tmp_path / "again", log=lambda *a: None)


def test_test_labels_the_training_data_lacks_are_one_line(run_cli, files, tmp_path):
    code, _, err = _extract(run_cli, files, tmp_path / "run", "--test-data", files / "odd.jsonl")
    assert code == 2 and err.count("\n") == 1
    assert "odd.jsonl: the test data has labels the training data lacks: surprised" in err
    assert not (tmp_path / "run" / "study.db").exists()


def test_the_held_out_fraction_sizes_b_and_the_test_part(run_cli, files, tmp_path):
    code, out, _ = _extract(run_cli, files, tmp_path / "small", "--heldout-fraction", "0.05")
    assert code == 0 and "test part: 28 examples" in out  # 60 held out, 32 of them B
    assert "warning: the test part holds only 28 examples" in out and "±0.19" in out
    code, out, _ = _extract(run_cli, files, tmp_path / "large", "--heldout-fraction", "0.4")
    assert code == 0 and "test part: 448 examples" in out and "warning: the test part" not in out


def test_labelled_data_on_the_default_task_gets_a_hint(run_cli, files, tmp_path):
    code, out, _ = run_cli("extract", "--space", files / "space.toml", "--data", files / "train.jsonl",
                           "--epsilon", 8, "--steps", 1, "--eval-batches", 1, "--threads", 1, "--out", tmp_path / "r",
                           "--quiet")
    assert code == 0 and "note: the data has labels (1,200 examples), but the task is mlm" in out
    assert "--task cls trains a classifier on them" in out
    code, out, _ = _extract(run_cli, files, tmp_path / "c")
    assert code == 0 and "note: the data has labels" not in out
    # The study's configs name the data's classes: best/config.json counts 3 and says which is which.
    from transformers import AutoConfig

    best = AutoConfig.from_pretrained(tmp_path / "c" / "best")
    assert best.num_labels == 3 and best.id2label == {0: "negative", 1: "neutral", 2: "positive"}


def test_distil_refuses_a_study_whose_data_file_was_replaced(run_cli, files, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text((files / "train.jsonl").read_text())
    code, _, err = run_cli("extract", "--space", files / "space.toml", "--task", "cls", "--data", data, "--epsilon", 8,
                           "--steps", 1, "--eval-batches", 1, "--threads", 1, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    rows = data.read_text().splitlines(keepends=True)
    data.write_text("".join(rows[:10]).replace('"negative"', '"positive"') + "".join(rows[10:]))  # relabelled
    code, _, err = run_cli("distil", tmp_path / "run", "--steps", 2)
    assert code == 2 and err.count("\n") == 1 and "the data changed since the study ran" in err
    assert not (tmp_path / "run" / "model").exists()
