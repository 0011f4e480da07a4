"""What ose distil's card states of a final training run (where it stopped, and why); what distil
refuses (an unfinished study, one in use, a folder it must not write over) and the ways out."""

import json
import shlex
import sqlite3

import pytest

import ose
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


# --- what distil refuses, and the ways out -------------------------------------------------

@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_space):
    """A finished scratch cls study of two candidates, and a copy with its last evaluation lost."""
    import shutil

    root = tmp_path_factory.mktemp("refusals")
    (root / "space.toml").write_text(tiny_space())
    ose.extract(space=str(root / "space.toml"), task="cls", epsilon=4, steps=2, max_examples=1500, eval_batches=1,
                threads=1, out=str(root / "run"), progress=False, log=lambda *a: None)
    shutil.copytree(root / "run", root / "cut")
    with sqlite3.connect(root / "cut" / "study.db") as db:
        db.execute("DELETE FROM evaluations WHERE id = (SELECT max(id) FROM evaluations)")
    return root


def test_an_unfinished_study_is_refused_with_the_command_that_finishes_it(study, run_cli, tmp_path):
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(study / "cut", cut)
    code, _, err = run_cli("distil", cut, "--steps", 2)
    assert code == 2 and err.count("\n") == 1 and "the study is unfinished (1 of 2 evaluations stored)" in err
    assert not (cut / "model").exists()
    command = err.split("finish it with `")[1].split("`")[0]
    assert command.startswith("ose extract ") and f"--out {cut}" in command
    code, _, err = run_cli(*shlex.split(command)[1:], "--quiet")  # the command given resumes and finishes it
    assert code == 0, err
    code, _, err = run_cli("distil", cut, "--steps", 2, "--quiet")
    assert code == 0, err


def test_partial_distils_the_best_so_far_and_the_card_says_so(study, run_cli, tmp_path):
    code, _, err = run_cli("distil", study / "cut", "--steps", 2, "--partial", "--out", tmp_path / "m", "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "ose.json").read_text())["search"]["unfinished"] == \
        "1 of 2 evaluations stored"
    assert "**The search was unfinished**" in (tmp_path / "m" / "README.md").read_text()


def test_a_study_in_use_is_refused_as_extract_refuses_it(study, run_cli, tmp_path):
    from ose.study import StudyLock

    lock = StudyLock(study / "run")
    try:
        code, _, err = run_cli("distil", study / "run", "--steps", 2, "--out", tmp_path / "m")
    finally:
        lock.release()
    assert code == 2 and err.count("\n") == 1 and "study in use by pid" in err and not (tmp_path / "m").exists()


def test_a_folder_ose_did_not_write_is_refused_unless_forced(study, run_cli, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    code, _, err = run_cli("distil", study / "run", "--steps", 2, "--out", mine)
    assert code == 2 and "holds files ose did not write" in err and "--force" in err
    assert (mine / "README.md").read_text() == "my notes"
    code, _, err = run_cli("distil", study / "run", "--steps", 2, "--out", study / "run")
    assert code == 2 and "is the study's own folder" in err
    code, _, err = run_cli("distil", study / "run", "--steps", 2, "--out", mine, "--force", "--quiet")
    assert code == 0, err
    assert (mine / "ose.json").is_file()


def test_restart_trains_again_rather_than_reusing_the_saved_run(study, tmp_path):
    from ose.distil import distil

    lines = []
    distil(study / "run", steps=2, out=tmp_path / "a", log=lines.append)
    again = distil(study / "run", steps=2, out=tmp_path / "a", log=lines.append)
    assert again.student.reused and "(continuing from its saved state)" in lines[-2]
    restarted = distil(study / "run", steps=2, out=tmp_path / "a", log=lines.append, restart=True)
    assert not restarted.student.reused and restarted.accuracy == again.accuracy  # deterministic, retrained


def test_extract_never_writes_into_a_folder_of_the_users(tiny_space, run_cli, tmp_path):
    space = tmp_path / "space.toml"
    space.write_text(tiny_space())
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("my,table\n")
    code, _, err = run_cli("extract", "--space", space, "--out", mine, "--steps", 1, "--quiet")
    assert code == 2 and err.count("\n") == 1 and "holds no study (study.db) but other files (results.csv)" in err
    assert (mine / "results.csv").read_text() == "my,table\n" and sorted(p.name for p in mine.iterdir()) == \
        ["results.csv"]


def test_ose_report_after_distil_shows_the_exported_model(study, run_cli, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(study / "run", run)
    code, _, err = run_cli("distil", run, "--steps", 2, "--quiet")
    assert code == 0, err
    card = json.loads((run / "model" / "ose.json").read_text())
    code, printed, _ = run_cli("report", run)
    assert code == 0
    line = next(line for line in printed.splitlines() if line.startswith("exported model/"))
    assert f"test accuracy {card['model']['accuracy']:.4f}" in line and "CPU speed-up over T" in line
    assert "Exported models" in (run / "report.html").read_text()
    assert json.loads((run / "results.json").read_text())["exports"][0]["folder"] == "model"


def test_the_command_named_for_an_unfinished_study_resumes_it_as_given(tiny_space, run_cli, tmp_path, monkeypatch):
    """Relative paths and options given in a config file: the study compares its options as typed."""
    from ose.config import ExtractConfig
    from ose.data import read_examples

    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.toml").write_text(tiny_space())
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": e.text, "label": e.label}) + "\n"
                                              for e in read_examples(ExtractConfig(max_examples=1500))))
    (tmp_path / "c.toml").write_text("kd_alpha = 0.3\n")
    code, _, err = run_cli("extract", "--config", "c.toml", "--space", "space.toml", "--data", "d.jsonl", "--task",
                           "cls", "--epsilon", 4, "--steps", 2, "--eval-batches", 1, "--threads", 1, "--device", "cpu",
                           "--out", "run", "--quiet")
    assert code == 0, err
    with sqlite3.connect(tmp_path / "run" / "study.db") as db:
        db.execute("DELETE FROM evaluations WHERE id = (SELECT max(id) FROM evaluations)")
    code, _, err = run_cli("distil", "run", "--steps", 2)
    command = err.split("finish it with `")[1].split("`")[0]
    assert "--data d.jsonl" in command and "--device cpu" in command
    assert command.endswith("with kd_alpha = 0.3 in a --config file")
    words = shlex.split(command.split(" with ")[0])[1:]
    code, _, err = run_cli(*words, "--config", "c.toml", "--quiet")
    assert code == 0, err  # it resumed (a different configuration would be refused)
    code, _, err = run_cli("distil", "run", "--steps", 2, "--quiet")
    assert code == 0, err


def test_pick_distils_another_stored_candidate_and_the_card_says_who_chose(study, run_cli, tmp_path):
    import shutil

    from ose.report.outputs import read_document

    run = tmp_path / "run"
    shutil.copytree(study / "run", run)
    doc = read_document(run)
    ranked = sorted((r for r in doc["evaluations"] if r["status"] == "ok"), key=lambda r: -r["w"])
    second = ranked[1]
    arch = ",".join(f"{k}={second[k]}" for k in "DAHI")
    code, out, err = run_cli("distil", run, "--steps", 2, "--pick", arch, "--quiet")
    assert code == 0, err
    folder = run / ("model-" + "-".join(f"{k}{second[k]}" for k in "DAHI"))
    card = json.loads((folder / "ose.json").read_text())
    assert card["architecture"] == {k: second[k] for k in "DAHI"} and card["search"]["chosen_by"] == "--pick"
    assert card["search"]["search_pick"]["W"] == doc["best"]["w"] and card["search"]["W"] == second["w"]
    assert "Chosen with `ose distil --pick`" in (folder / "README.md").read_text()
    assert not (run / "model").exists()  # the search's pick's folder is left alone
    # the rank of the same candidate names the same run: its saved state is reused, the folder kept
    code, _, err = run_cli("distil", run, "--steps", 2, "--pick", "2", "--quiet")
    assert code == 0, err
    # bad picks: one line, exit 2, nothing written
    for bad, says in (("9", "ranked 1 to 2 by W"), ("D=1,A=2", "name every one of D, A, H, I"),
                      ("D=7,A=2,H=16,I=32", "no finished evaluation of this architecture"), ("x", "expects a rank")):
        code, _, err = run_cli("distil", run, "--steps", 2, "--pick", bad)
        assert code == 2 and err.count("\n") == 1 and says in err, (bad, err)
