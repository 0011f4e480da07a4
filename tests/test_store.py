"""The study store: one contract, run against every implementation; bad files refused untouched."""

import hashlib
import sqlite3
import threading

import pytest

from ose.store import STUDY_FILE, MemoryStore, SQLiteStore, StoreError, open_store


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    s = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / STUDY_FILE)
    yield s
    s.close()


def _rec(i, status="ok"):
    return {"D": i, "A": 2, "H": 64, "I": 128, "lr": 0.1, "momentum": 0.9, "batch_size": 8, "params": 100 + i,
            "params_effective": 10, "mults": 5, "adds": 5, "other": 1, "ops": 11, "error": 0.5, "loss": 1.0,
            "w": 1.5, "steps": 3, "seconds": 0.1, "status": status, "message": ""}


def test_new_store_has_no_meta_then_keeps_it(store):
    assert store.meta() is None
    store.init({"settings": {"x": 1}, "jobs": ["a"]})
    store.init({"settings": {"x": 2}, "jobs": ["b"]})  # written once; never replaced
    assert store.meta() == {"settings": {"x": 1}, "jobs": ["a"]}


def test_add_keeps_order_and_ignores_a_second_write_of_a_key(store):
    assert store.add("k1", _rec(1), {"D": 1}, {"lr": 0.1})
    assert store.add("k2", _rec(2, "failed"), {"D": 2}, {"lr": 0.1})
    assert not store.add("k1", _rec(9), {"D": 9}, {"lr": 0.1})
    recs = store.records()
    assert [r["key"] for r in recs] == ["k1", "k2"]
    assert recs[0]["D"] == 1 and recs[1]["status"] == "failed"
    assert store.keys() == {"k1", "k2"}


def test_infinite_w_round_trips(store):
    store.add("k", {**_rec(1), "w": float("inf")}, {}, {})
    assert store.records()[0]["w"] == float("inf")


def test_sqlite_persists_across_connections(tmp_path):
    s = SQLiteStore(tmp_path / STUDY_FILE)
    s.init({"jobs": ["k"]})
    s.add("k", _rec(1), {"D": 1}, {"lr": 0.1})
    s.close()
    again = open_store(tmp_path, readonly=True)
    assert again.meta() == {"jobs": ["k"]} and again.records()[0]["params"] == 101
    row = sqlite3.connect(tmp_path / STUDY_FILE).execute("SELECT xi, theta, params, status FROM evaluations").fetchone()
    assert row == ('{"D": 1}', '{"lr": 0.1}', 101, "ok")
    assert sqlite3.connect(tmp_path / STUDY_FILE).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_writers_leave_one_row_per_key(tmp_path):
    SQLiteStore(tmp_path / STUDY_FILE).close()

    def writer(offset):
        s = SQLiteStore(tmp_path / STUDY_FILE)
        for i in range(40):
            s.add(f"k{(i + offset) % 40}", _rec(i), {}, {})
        s.close()

    threads = [threading.Thread(target=writer, args=(o,)) for o in (0, 7, 19)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [r["key"] for r in open_store(tmp_path).records()]
    assert sorted(keys) == sorted(f"k{i}" for i in range(40))


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("content, problem", [
    (b"this is not a database at all, just some text" * 100, "not a usable study file"),
    (b"", "not an ose study"),
])
def test_not_a_study_is_refused_untouched(tmp_path, content, problem):
    path = tmp_path / STUDY_FILE
    path.write_bytes(content)
    before = _digest(path)
    with pytest.raises(StoreError, match=problem) as e:
        SQLiteStore(path)
    assert "\n" not in str(e.value)
    assert _digest(path) == before and sorted(p.name for p in tmp_path.iterdir()) == [STUDY_FILE]


def test_foreign_sqlite_and_unknown_schema_are_refused_untouched(tmp_path):
    foreign = tmp_path / "a" / STUDY_FILE
    foreign.parent.mkdir()
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    before = _digest(foreign)
    with pytest.raises(StoreError, match="not an ose study"):
        SQLiteStore(foreign)
    assert _digest(foreign) == before

    future = tmp_path / "b" / STUDY_FILE
    future.parent.mkdir()
    SQLiteStore(future).close()
    db = sqlite3.connect(future)
    db.execute("UPDATE ose_meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    before = _digest(future)
    with pytest.raises(StoreError, match="unknown study schema version 99"):
        SQLiteStore(future)
    assert _digest(future) == before


def test_corrupt_study_is_refused_untouched(tmp_path):
    path = tmp_path / STUDY_FILE
    s = SQLiteStore(path)
    for i in range(200):
        s.add(f"k{i}", {**_rec(i), "message": "x" * 500}, {}, {})
    s.close()
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    data = bytearray(path.read_bytes())
    data[4096 * 3: 4096 * 3 + 2000] = b"\xff" * 2000  # scribble over a b-tree page
    path.write_bytes(bytes(data))
    before = _digest(path)
    with pytest.raises(StoreError) as e:
        SQLiteStore(path)
    assert "corrupt" in str(e.value) or "not a usable" in str(e.value)
    assert _digest(path) == before


def test_locked_study_gives_an_error_after_the_timeout(tmp_path):
    path = tmp_path / STUDY_FILE
    SQLiteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        s = SQLiteStore(path, timeout=0.2)
        with pytest.raises(StoreError, match="locked by another process"):
            s.add("k", _rec(1), {}, {})
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_returned_values_are_copies(store):
    """Changing what a store returns changes nothing stored, on every backend."""
    store.init({"settings": {"x": [1, 2]}, "jobs": ["a"]})
    store.add("k", _rec(1), {"D": 1}, {"lr": 0.1})
    store.set_note("run", {"pid": 1, "work": {"k": 2.0}})
    meta, records, note = store.meta(), store.records(), store.note("run")
    meta["settings"]["x"].append(3)
    records[0]["error"] = -1.0
    note["work"]["k"] = 99.0
    assert store.meta() == {"settings": {"x": [1, 2]}, "jobs": ["a"]}
    assert store.records()[0]["error"] == 0.5
    assert store.note("run") == {"pid": 1, "work": {"k": 2.0}}


def test_a_note_is_replaced_and_never_touches_the_identity(store):
    store.init({"jobs": ["a"]})
    assert store.note("run") is None
    store.set_note("run", {"pid": 1})
    store.set_note("run", {"pid": 2})
    assert store.note("run") == {"pid": 2} and store.meta() == {"jobs": ["a"]}


def test_only_a_failed_evaluation_retires_and_it_is_kept_whole(store):
    store.add("ok", _rec(1), {"D": 1}, {"lr": 0.1})
    store.add("bad", {**_rec(2, "failed"), "message": "out of memory"}, {"D": 2}, {"lr": 0.1})
    assert not store.retire("ok") and not store.retire("missing")
    assert store.retire("bad") and not store.retire("bad")
    assert [r["key"] for r in store.records()] == ["ok"]
    kept = store.retired()
    assert [(r["key"], r["status"], r["message"]) for r in kept] == [("bad", "failed", "out of memory")]
    assert kept[0]["retired_at"] >= kept[0]["finished_at"]
    assert store.add("bad", _rec(2), {"D": 2}, {"lr": 0.1})  # the key is free to run again
    assert [r["status"] for r in store.records()] == ["ok", "ok"] and len(store.retired()) == 1


def test_a_study_without_retired_evaluations_reads_as_before(tmp_path):
    """The retired table appears only when something retires: files stay readable as schema 1."""
    s = SQLiteStore(tmp_path / STUDY_FILE)
    s.add("k", _rec(1), {}, {})
    assert s.retired() == []
    s.close()
    tables = {r[0] for r in sqlite3.connect(tmp_path / STUDY_FILE).execute("SELECT name FROM sqlite_master")}
    assert "retired" not in tables and SQLiteStore(tmp_path / STUDY_FILE, readonly=True).retired() == []
