"""A study directory under concurrency: one runner at a time, atomic creation, early refusals."""

import json
import multiprocessing as mp
import os
import sqlite3
import stat

import pytest

from ose.store import STUDY_FILE, StoreError
from ose.study import LOCK_FILE, StudyInUse, check_free, check_writable, holder, open_study, read_meta

ROUNDS = 25
PROCESSES = 4


def _meta(steps: int) -> dict:
    return {"settings": {"config": {"steps": steps}}, "jobs": ["a", "b"], "total": 2, "created_at": 0.0}


def _contender(out, steps, go, results, release):
    """Open the study the moment ``go`` fires; a winner keeps it until every contender has tried."""
    go.wait()
    try:
        store, lock = open_study(out, _meta(steps), log=lambda *a: None)
    except StoreError as e:
        results.put(("refused", steps, str(e)))
        return
    results.put(("opened", steps, store.meta()["settings"]["config"]["steps"]))
    release.wait(60)
    store.close()
    lock.release()


@pytest.mark.parametrize("same_config", [True, False], ids=["same-config", "different-configs"])
def test_many_processes_opening_one_fresh_study_at_once(tmp_path, same_config):
    """Stress: every round, several processes open one fresh study at the same moment. Exactly
    one runs it; every other gets the one-line "in use" refusal; nobody sees a half-made file."""
    ctx = mp.get_context("fork")
    for round_ in range(ROUNDS):
        out = tmp_path / f"round{round_}"
        go, release, results = ctx.Event(), ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_contender,
                             args=(out, 12 if same_config else 12 + i, go, results, release))
                 for i in range(PROCESSES)]
        for p in procs:
            p.start()
        go.set()
        outcomes = [results.get(timeout=60) for _ in procs]
        release.set()
        for p in procs:
            p.join(60)
        opened = [o for o in outcomes if o[0] == "opened"]
        refused = [o[2] for o in outcomes if o[0] == "refused"]
        assert len(opened) == 1, outcomes
        assert opened[0][1] == opened[0][2]  # the winner's identity is the one stored
        for message in refused:
            assert "study in use by pid" in message and "\n" not in message, message
        assert read_meta(out) == _meta(opened[0][1])
        db = sqlite3.connect(out / STUDY_FILE)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    ctx = mp.get_context("fork")
    child = ctx.Process(target=_hold_then_die, args=(tmp_path,))
    child.start()
    child.join(60)
    assert child.exitcode == -9
    assert holder(tmp_path) is None
    store, lock = open_study(tmp_path, _meta(12), log=lambda *a: None)  # resumes without clean-up
    store.close()
    lock.release()


def _hold_then_die(out):
    open_study(out, _meta(12), log=lambda *a: None)
    os.kill(os.getpid(), 9)


def test_a_held_study_is_refused_early_without_writing(tmp_path):
    store, lock = open_study(tmp_path, _meta(12), log=lambda *a: None)
    try:
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != STUDY_FILE + "-shm"}
        with pytest.raises(StudyInUse, match=f"study in use by pid {os.getpid()}"):
            check_free(tmp_path)
        with pytest.raises(StudyInUse):
            open_study(tmp_path, _meta(12), log=lambda *a: None)
        after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != STUDY_FILE + "-shm"}
        assert after == before
    finally:
        store.close()
        lock.release()
    check_free(tmp_path)


def test_a_different_configuration_is_refused_and_a_new_study_sets_the_old_aside(tmp_path):
    store, lock = open_study(tmp_path, _meta(12), log=lambda *a: None)
    assert store.add("a", {"status": "ok"}, {}, {})
    store.close()
    lock.release()
    with pytest.raises(StoreError, match="different configuration.*steps: 12 → 13"):
        open_study(tmp_path, _meta(13), log=lambda *a: None)
    assert holder(tmp_path) is None  # a refusal releases the lock
    store, lock = open_study(tmp_path, _meta(13), new_study=True, log=lambda *a: None)
    assert store.records() == [] and store.meta() == _meta(13)
    store.close()
    lock.release()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(STUDY_FILE + ".") and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and json.loads(
        sqlite3.connect(aside[0]).execute("SELECT record FROM evaluations").fetchone()[0]) == {"status": "ok"}


def test_a_new_study_moves_the_old_studys_export_and_distil_state_with_it(tmp_path):
    store, lock = open_study(tmp_path, _meta(12), log=lambda *a: None)
    store.close()
    lock.release()
    for folder, name in (("model", "ose.json"), (".distil", "student-x.pt"), ("notes", "mine.txt")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_text("old")
    store, lock = open_study(tmp_path, _meta(13), new_study=True, log=lambda *a: None)
    store.close()
    lock.release()
    stamp = next(p.name for p in tmp_path.iterdir() if p.name.startswith(STUDY_FILE + ".")
                 and not p.name.endswith(("-wal", "-shm")))[len(STUDY_FILE) + 1:]
    assert (tmp_path / f"model.{stamp}" / "ose.json").read_text() == "old"
    assert (tmp_path / f".distil.{stamp}" / "student-x.pt").is_file()
    assert not (tmp_path / "model").exists() and (tmp_path / "notes" / "mine.txt").is_file()  # the user's stays


def test_a_study_from_before_sort_resumes_in_its_own_order_only(tmp_path):
    # It was cut in the whole network's order: the same study under --sort total, not the new default.
    old = _meta(12)
    store, lock = open_study(tmp_path, old, log=lambda *a: None)
    store.close()
    lock.release()
    for sort in ("total", "intermediate"):
        meta = {**old, "settings": {"config": {"steps": 12, "sort": sort}}}
        if sort == "intermediate":
            with pytest.raises(StoreError, match="config.sort: 'total' → 'intermediate'"):
                open_study(tmp_path, meta, log=lambda *a: None)
            continue
        store, lock = open_study(tmp_path, meta, log=lambda *a: None)
        assert store.meta() == old
        store.close()
        lock.release()


def _read_only_dir(tmp_path):
    """A directory this process cannot write: chmod where permissions bind, a read-only mount for root."""
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(stat.S_IRUSR | stat.S_IXUSR)
        return d
    if not os.access("/proc/sys", os.W_OK):
        return __import__("pathlib").Path("/proc/sys")
    pytest.skip("running as root with no read-only file system to try")


def test_check_writable_refuses_a_read_only_directory(tmp_path):
    ro = _read_only_dir(tmp_path)
    with pytest.raises(StoreError, match="cannot write in"):
        check_writable(ro / "study")
    check_writable(tmp_path / "new" / "deeper")  # a missing directory under a writable one is fine
    assert not (tmp_path / "new").exists()


def test_lock_file_holds_the_pid(tmp_path):
    store, lock = open_study(tmp_path, _meta(12), log=lambda *a: None)
    try:
        assert (tmp_path / LOCK_FILE).read_text() == str(os.getpid())
        assert holder(tmp_path) == f"pid {os.getpid()}"
    finally:
        store.close()
        lock.release()
    assert holder(tmp_path) is None


def _unreadable(kind: str, out) -> bytes:
    """A study file sqlite cannot read: random bytes, or a real study cut in half."""
    import random

    if kind == "random-bytes":
        return random.Random(0).randbytes(5000)
    store, lock = open_study(out, _meta(12), log=lambda *a: None)
    for i in range(200):
        store.add(f"k{i}", {"status": "ok", "pad": "x" * 500}, {}, {})
    store.close()
    lock.release()
    db = sqlite3.connect(out / STUDY_FILE)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    whole = (out / STUDY_FILE).read_bytes()
    for leftover in out.glob(STUDY_FILE + "-*"):
        leftover.unlink()
    return whole[:len(whole) // 2]


@pytest.mark.parametrize("kind", ["random-bytes", "truncated"])
def test_an_unreadable_study_names_new_study_which_sets_it_aside(tmp_path, kind):
    """Before, a corrupt study.db could not be set aside with --new-study, the documented way out."""
    broken = _unreadable(kind, tmp_path)
    (tmp_path / STUDY_FILE).write_bytes(broken)
    with pytest.raises(StoreError, match="; --new-study sets it aside") as refused:
        open_study(tmp_path, _meta(13), log=lambda *a: None)
    assert "\n" not in str(refused.value) and (tmp_path / STUDY_FILE).read_bytes() == broken
    lines = []
    store, lock = open_study(tmp_path, _meta(13), new_study=True, log=lines.append)
    assert store.meta() == _meta(13) and store.records() == []
    store.close()
    lock.release()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(STUDY_FILE + ".corrupt-")
             and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == broken  # renamed, never deleted or written
    assert lines == [f"set aside the unreadable study file as {aside[0].name}"]


def test_two_set_asides_in_one_second_keep_both(tmp_path, monkeypatch):
    from ose import study

    monkeypatch.setattr(study.time, "strftime", lambda *a: "20260101-000000")
    for content in (b"first", b"second"):
        (tmp_path / STUDY_FILE).write_bytes(content)
        study.set_aside(tmp_path)
    kept = sorted(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(STUDY_FILE + "."))
    assert kept == [b"first", b"second"]
