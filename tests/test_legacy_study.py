"""A study made before studies recorded a format (ose 0.1.0, tests/data/study-0.1.0-mlm) resumes
with its own B and its own counts, so that its new evaluations equal what the old version stored,
and ``ose distil`` measures it on a test part and says how that part was cut."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from ose.cli import main

FIXTURE = Path(__file__).parent / "data" / "study-0.1.0-mlm" / "study.db"
COMMAND = ["extract", "--space", "bert-tiny", "--epsilon", "18", "--steps", "3", "--max-examples", "1500",
           "--eval-batches", "1", "--threads", "1", "--quiet"]


def _records(db: Path) -> dict[str, dict]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT key, record FROM evaluations ORDER BY id").fetchall()
    finally:
        con.close()
    return {k: {f: v for f, v in json.loads(r).items() if f not in ("seconds", "finished_at")} for k, r in rows}


@pytest.fixture
def legacy(tmp_path, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    study = tmp_path / "study"
    study.mkdir()
    shutil.copy(FIXTURE, study / "study.db")
    return study


def test_a_study_made_before_formats_resumes_to_what_it_would_have_stored(legacy, capsys):
    stored = _records(legacy / "study.db")
    assert len(stored) == 3
    con = sqlite3.connect(legacy / "study.db")
    con.execute("DELETE FROM evaluations WHERE id > 1")  # as if killed after its first evaluation
    con.commit()
    con.close()
    assert main([*COMMAND, "--out", str(legacy)]) == 0
    assert "resuming: 1 of 3" in capsys.readouterr().out
    # B's losses, to the last digit, and W from the old counts (C as the space file's head): the same
    again = _records(legacy / "study.db")
    # the evaluations run now also keep B's rows (for ê's interval) and the last quarter's training
    # loss (a proxy --metric train-loss uses), which the old ones lack
    assert {k: {f: v for f, v in r.items() if f not in ("on_b", "train_loss_tail")} for k, r in again.items()} == stored
    assert sum("on_b" in r for r in again.values()) == 2
    meta = json.loads(sqlite3.connect(legacy / "study.db").execute(
        "SELECT value FROM ose_meta WHERE key='study'").fetchone()[0])
    assert "format" not in meta["settings"] and meta["settings"]["space"]["settings"]["head"] == "classifier"


def test_a_study_made_before_formats_distils_and_says_which_rows_it_measured(legacy, run_cli):
    from transformers import AutoModelForMaskedLM

    from ose.distil import distil

    result = distil(legacy, steps=2, log=lambda *a: None)
    test = result.card["test"]
    assert test["layout"] == "legacy" and test["rows"] > 0 and test["target_unit"] == "masked tokens"
    card = (legacy / "model" / "README.md").read_text()
    assert "predates a separate test part" in card and f"{test['rows']:,} blocks of 64 tokens" in card
    assert result.card["head"] == "mlm"  # the card counts the model exported, whatever the study counted
    code, printed, _ = run_cli("count", "--from", legacy / "model", "--format", "json")
    doc = json.loads(printed)
    numel = sum(p.numel() for p in AutoModelForMaskedLM.from_pretrained(legacy / "model").parameters())
    assert code == 0 and doc["settings"]["head"] == "mlm" and doc["params"] == numel == result.card["params"]
    assert doc["checkpoint"]["matches"] is True


def test_a_study_made_before_formats_from_a_named_model_reopens_from_anywhere(tmp_path, monkeypatch):
    """Studies of ose 0.1.0 stored --from as given: a model name (here one that resolves, as
    all-MiniLM-L6-v2 does where its package is installed) is used wherever ose runs; a relative
    path that is not there is a one-line hint to run from where the study ran."""
    import ose.pretrained
    from ose.config import ConfigError
    from ose.inputs import stored_config

    monkeypatch.setattr(ose.pretrained, "resolve", lambda spec: tmp_path if spec == "some-model" else
                        (_ for _ in ()).throw(ConfigError(f"--from {spec}: no such directory")))
    meta = {"settings": {"config": {"source": "some-model", "task": "cls"}}}
    assert stored_config(meta, tmp_path).source == "some-model"
    meta["settings"]["config"]["source"] = "models/mine"
    with pytest.raises(ConfigError, match="names --from models/mine, a path relative to the directory"):
        stored_config(meta, tmp_path)
