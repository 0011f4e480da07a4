"""Crash and resume for real: SIGKILL an extraction at several moments, resume each time.

Every evaluation finished before a kill must survive it, none may be stored twice, and the
final table must equal an uninterrupted run's.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ose.space import load_space


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_space):
    root = tmp_path_factory.mktemp("resume")
    (root / "space.toml").write_text(tiny_space())
    e = {**os.environ, "OSE_CACHE": str(root / "cache"), "PYTHONUNBUFFERED": "1"}
    e.pop("OSE_FAULT", None)
    return root, e


def _cmd(root, out):
    return [sys.executable, "-m", "ose", "extract", "--space", str(root / "space.toml"), "--epsilon", "1",
            "--steps", "12", "--theta", "lr=0.1,momentum=0.9,batch_size=8", "--theta", "lr=0.3,momentum=0.0,batch_size=8",
            "--max-examples", "1500", "--eval-batches", "1", "--threads", "1", "--quiet", "--out", str(out)]


def _rows(out):
    path = out / "study.db"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT key, record FROM evaluations ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        db.close()


def _table(out):
    doc = json.loads((out / "results.json").read_text())
    def strip(r):
        return {k: v for k, v in r.items() if k != "seconds"}

    return [strip(r) for r in doc["evaluations"]], strip(doc["best"])


def _kill_when_held(proc, folder: Path, limit=120):
    """SIGKILL ``proc`` once it is busy on the held architecture (the ``hold`` fault wrote its pid file)."""
    start = time.time()
    while not list(folder.glob("held.*")):
        if proc.poll() is not None:
            raise AssertionError(f"extraction ended before the kill point (rc={proc.returncode})")
        assert time.time() - start < limit, "kill point never reached"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _archs(root) -> list[str]:
    """The architectures in the order the study evaluates them (under each θ in turn)."""
    return [c.key for c in load_space(root / "space.toml").candidates()]


@pytest.fixture(scope="module")
def reference(env):
    root, e = env
    out = root / "reference"
    subprocess.run(_cmd(root, out), env=e, check=True, capture_output=True)
    return _table(out)


def test_sigkill_at_six_moments_then_resume_loses_and_repeats_nothing(env, reference):
    root, e = env
    out = root / "killed"
    seen: dict[str, str] = {}

    def check_survivors():
        rows = _rows(out)
        keys = [k for k, _ in rows]
        assert len(keys) == len(set(keys)), "an evaluation was stored twice"
        for k, rec in seen.items():
            assert dict(rows).get(k) == rec, f"finished evaluation {k} was lost or changed"
        seen.update(dict(rows))
        return len(rows)

    def start(fault=None):
        return subprocess.Popen(_cmd(root, out), env={**e, **({"OSE_FAULT": fault} if fault else {})},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    archs = _archs(root)
    # 1. while starting up, once its inputs are prepared, before anything is stored
    p = start("prepared:1")
    assert p.wait() == -signal.SIGKILL
    assert check_survivors() == 0
    # 2. inside the very first store transaction, before its commit
    p = start("store-write:1")
    assert p.wait() == -signal.SIGKILL
    assert check_survivors() == 0
    # 3. in the middle of training the fourth architecture (under the first θ), three stored
    held = root / "held-3"
    held.mkdir()
    p = start(f"hold:{archs[3]}@{held}")
    _kill_when_held(p, held)
    n = check_survivors()
    assert n == 3
    # 4. inside the second store transaction of the resumed run
    p = start("store-write:2")
    assert p.wait() == -signal.SIGKILL
    assert check_survivors() == n + 1
    # 5. again mid-training, later: the first architecture under the second θ, all 8 of the first stored
    held = root / "held-8"
    held.mkdir()
    p = start(f"hold:{archs[0]}@{held}")
    _kill_when_held(p, held)
    n = check_survivors()
    assert n == 8
    # 6. after every evaluation, while the output files are written
    p = start("report-write:1")
    assert p.wait() == -signal.SIGKILL
    assert check_survivors() == 16
    # finally: resume to the end
    subprocess.run(_cmd(root, out), env=e, check=True, capture_output=True)
    assert check_survivors() == 16
    assert _table(out) == reference


def _race(e, commands):
    """Start every command at once; (exit code, stdout, stderr) of each."""
    procs = [subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in commands]
    streams = [p.communicate(timeout=300) for p in procs]
    return [(p.returncode, *io) for p, io in zip(procs, streams)]


def test_two_processes_on_one_study_one_runs_it(env, reference):
    """The second is refused while the first runs (or, had it come later, finds the work done):
    never do both train every candidate."""
    root, e = env
    out = root / "concurrent"
    outcomes = _race(e, [_cmd(root, out)] * 2)
    codes = sorted(p for p, _, _ in outcomes)
    for code, printed, err in outcomes:
        assert code in (0, 2), err[-2000:]
        if code == 2:
            assert "study in use by pid" in err and err.count("\n") == 1, err
    assert codes[0] == 0
    if codes == [0, 0]:
        assert any("resuming: 16 of 16" in printed for _, printed, _ in outcomes)
    keys = [k for k, _ in _rows(out)]
    assert len(keys) == 16 and len(set(keys)) == 16
    assert _table(out) == reference


def test_two_configurations_racing_for_one_fresh_study_one_wins(env):
    root, e = env
    out = root / "race"
    other = [c if c != "12" else "13" for c in _cmd(root, out)]  # steps 12 -> 13
    outcomes = _race(e, [_cmd(root, out), other])
    winners = [i for i, (code, _, _) in enumerate(outcomes) if code == 0]
    assert len(winners) == 1, [err[-500:] for _, _, err in outcomes]
    code, _, err = outcomes[1 - winners[0]]
    assert code == 2 and err.count("\n") == 1
    assert "study in use by pid" in err or "different configuration" in err, err
    stored = json.loads(sqlite3.connect(out / "study.db").execute(
        "SELECT value FROM ose_meta WHERE key='study'").fetchone()[0])
    assert stored["settings"]["config"]["steps"] == (12, 13)[winners[0]]


def test_report_rebuilds_outputs_without_training(env, reference, run_cli):
    root, _ = env
    out = root / "reference"
    for name in ("results.json", "results.csv", "pareto.csv"):
        (out / name).unlink()
    code, printed, _ = run_cli("report", out)
    assert code == 0 and "wrote" in printed
    assert _table(out) == reference
    assert (out / "best" / "config.json").exists()


def test_status_reads_a_study(env, reference, run_cli):
    root, _ = env
    code, printed, _ = run_cli("status", root / "reference", "--format", "json")
    st = json.loads(printed)
    assert code == 0 and st["done"] + st["failed"] == 16 and st["remaining"] == 0
    assert st["best_w"] == pytest.approx(float(reference[1]["w"]))


def test_changed_configuration_is_refused_unless_new_study(env, reference):
    root, e = env
    out = root / "reference"
    before = (out / "study.db").read_bytes()
    cmd = [c if c != "12" else "13" for c in _cmd(root, out)]  # steps 12 -> 13
    r = subprocess.run(cmd, env=e, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "steps" in r.stderr
    assert (out / "study.db").read_bytes() == before
    r = subprocess.run(cmd[:-2] + ["--max-examples", "1500", "--new-study", "--out", str(out)], env=e,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    aside = [p for p in out.iterdir() if p.name.startswith("study.db.") and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1
    assert sqlite3.connect(aside[0]).execute("SELECT count(*) FROM evaluations").fetchone()[0] == 16


def test_report_on_an_unfinished_study_says_it_is_partial(env, reference, run_cli):
    import shutil

    root, _ = env
    out = root / "unfinished"
    out.mkdir()
    shutil.copy(root / "reference" / "study.db", out / "study.db")
    db = sqlite3.connect(out / "study.db")
    db.execute("DELETE FROM evaluations WHERE id > 5")  # as if stopped after five evaluations
    db.commit()
    db.close()
    code, printed, _ = run_cli("report", out)
    assert code == 0 and printed.startswith("PARTIAL: the study is unfinished, 5 of 16 evaluations stored")
    page = (out / "report.html").read_text()
    assert "Best architecture so far (unfinished study)" in page and "Chosen architecture" not in page
    assert "5 of 16" in page
    assert json.loads((out / "results.json").read_text())["progress"] == {"stored": 5, "total": 16}
