"""Study storage: every finished evaluation kept the moment it finishes.

One interface, two implementations: ``MemoryStore`` (tests, throw-away runs) and
``SQLiteStore`` (one file per study, ``study.db`` in the output directory; standard library
``sqlite3`` in WAL mode with a busy timeout). Contract:

- ``add`` writes one evaluation in one transaction; an evaluation already stored under the
  same key is left as it is (two writers racing on a key leave exactly one row).
- Stored evaluations are never changed or deleted; ``records`` returns them in insertion order.
  The one exception is a failed evaluation, which ``retire`` moves whole to the retired
  evaluations (``retired``), so that its job can run again (``--retry-failed``: an out-of-memory
  caused by a neighbour need not be final); nothing is lost.
- ``meta`` is the study's identity (configuration, space, data, version), written once.
- A note (``set_note``/``note``) is information about the latest run, such as its time
  estimate; unlike ``meta`` it may be replaced, and it never changes an evaluation.
- Returned values are copies: changing them changes nothing stored.
- A file that is not a study, is corrupt, or has an unknown schema is refused with a
  one-line ``StoreError`` and is never written to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

from ._faults import fault
from .errors import StoreError
from .record import COUNTS, MEASURED

SCHEMA_VERSION = 1
STUDY_FILE = "study.db"
# The record fields that are columns of the evaluations table (schema version 1), for queries;
# the whole record is kept as JSON beside them.
COLUMNS = (*COUNTS, *(m for m in MEASURED if m not in ("latency", "train_loss", "train_loss_tail", "kl")))


class Store(ABC):
    @abstractmethod
    def meta(self) -> dict | None:
        """The study's identity, or None for a new study."""

    @abstractmethod
    def init(self, meta: dict) -> None:
        """Record the identity of a new study."""

    @abstractmethod
    def add(self, key: str, record: dict, xi: dict, theta: dict) -> bool:
        """Store one finished evaluation of ξ under θ; False if ``key`` was already stored."""

    @abstractmethod
    def records(self) -> list[dict]:
        """Every stored evaluation, each with its ``key`` and ``finished_at``."""

    @abstractmethod
    def retire(self, key: str) -> bool:
        """Move the failed evaluation under ``key`` to the retired ones; False (nothing done) if
        there is none, or it did not fail."""

    @abstractmethod
    def retired(self) -> list[dict]:
        """Every retired evaluation, each with its ``key``, ``finished_at`` and ``retired_at``."""

    @abstractmethod
    def set_note(self, name: str, value: dict) -> None:
        """Keep ``value`` under ``name``, replacing what was there."""

    @abstractmethod
    def note(self, name: str) -> dict | None:
        """The value kept under ``name``, or None."""

    def keys(self) -> set[str]:
        return {r["key"] for r in self.records()}

    def close(self) -> None:
        return None


class MemoryStore(Store):
    def __init__(self):
        self._meta: dict | None = None
        self._rows: dict[str, dict] = {}
        self._retired: list[dict] = []
        self._notes: dict[str, dict] = {}

    def meta(self) -> dict | None:
        return _copy(self._meta)

    def init(self, meta: dict) -> None:
        if self._meta is None:
            self._meta = _copy(meta)

    def add(self, key: str, record: dict, xi: dict, theta: dict) -> bool:
        if key in self._rows:
            return False
        self._rows[key] = {**_copy(record), "key": key, "finished_at": time.time()}
        return True

    def records(self) -> list[dict]:
        return [_copy(r) for r in self._rows.values()]

    def retire(self, key: str) -> bool:
        if self._rows.get(key, {}).get("status") != "failed":
            return False
        self._retired.append({**self._rows.pop(key), "retired_at": time.time()})
        return True

    def retired(self) -> list[dict]:
        return [_copy(r) for r in self._retired]

    def set_note(self, name: str, value: dict) -> None:
        self._notes[name] = _copy(value)

    def note(self, name: str) -> dict | None:
        return _copy(self._notes.get(name))


def _copy(value):
    """A deep copy through JSON: what SQLite hands back, so both stores return the same kinds of value."""
    return None if value is None else json.loads(json.dumps(value))


_DDL = f"""
CREATE TABLE ose_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,          -- ξ and θ of the evaluation
    xi TEXT NOT NULL,                  -- JSON
    theta TEXT NOT NULL,               -- JSON
    params INTEGER, params_effective INTEGER, mults INTEGER, adds INTEGER, other INTEGER, ops INTEGER,
    error REAL, loss REAL, w REAL, steps INTEGER, seconds REAL, status TEXT NOT NULL, message TEXT,
    record TEXT NOT NULL,              -- the whole record, JSON
    finished_at REAL NOT NULL
);
"""
# Failed evaluations set aside to run again. Created when first needed, so a study file stays
# readable by an ose that predates it (schema version 1 either way).
_RETIRED_DDL = """CREATE TABLE IF NOT EXISTS retired (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, record TEXT NOT NULL,
    finished_at REAL NOT NULL, retired_at REAL NOT NULL)"""


class UnreadableStudy(StoreError):
    """A study file this ose cannot read: not SQLite, corrupt, truncated, not ose's, or a newer schema."""


class SQLiteStore(Store):
    """``study.db``: one row per evaluation, each written in its own transaction."""

    def __init__(self, path: str | Path, timeout: float = 30.0, readonly: bool = False, meta: dict | None = None):
        """Open the study at ``path``; create it first, with the identity ``meta``, if there is none.

        A new file appears whole or not at all: it is built under a private name and linked
        into place, so a concurrent reader never sees a study without its tables.
        """
        self.path = Path(path)
        self.timeout = timeout
        if not self.path.exists():
            if readonly:
                raise StoreError(f"{self.path}: no study here")
            self._create(meta)
        self._check_readonly()
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        self._db = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)

    def _guard(self, fn):
        """Run ``fn``; any sqlite error becomes a one-line StoreError."""
        try:
            return fn()
        except sqlite3.DatabaseError as e:  # OperationalError included
            if "locked" in str(e) or "busy" in str(e):
                raise StoreError(f"{self.path}: study is locked by another process past the "
                                 f"{self.timeout:g} s timeout") from None
            raise UnreadableStudy(f"{self.path}: not a usable study file ({e})") from None

    def _check_readonly(self) -> None:
        """Validate an existing file without writing a byte to it."""
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout)
        except sqlite3.Error as e:
            raise UnreadableStudy(f"{self.path}: cannot open ({e})") from None
        try:
            tables = {r[0] for r in self._ro(db, "SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"ose_meta", "evaluations"} <= tables:
                raise UnreadableStudy(f"{self.path}: not an ose study (no ose tables)")
            row = self._ro(db, "SELECT value FROM ose_meta WHERE key='schema_version'")
            version = int(row[0][0]) if row else None
            if version != SCHEMA_VERSION:
                raise UnreadableStudy(f"{self.path}: unknown study schema version {version} "
                                      f"(this ose reads version {SCHEMA_VERSION})")
            check = self._ro(db, "PRAGMA quick_check")
            if check[0][0] != "ok":
                raise UnreadableStudy(f"{self.path}: study file is corrupt ({check[0][0]})")
        finally:
            db.close()

    def _ro(self, db, sql: str):
        return self._guard(lambda: db.execute(sql).fetchall())

    def _create(self, meta: dict | None) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # kept in the file: every later connection uses WAL
                db.executescript(f"BEGIN IMMEDIATE; {_DDL} INSERT INTO ose_meta VALUES "
                                 f"('schema_version', '{SCHEMA_VERSION}'); COMMIT;")
                if meta is not None:
                    db.execute("INSERT INTO ose_meta VALUES ('study', ?)", (json.dumps(meta),))
            finally:
                db.close()
            try:
                os.link(tmp, self.path)  # never replaces: if another process created the study first, theirs stands
            except FileExistsError:
                pass
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot create the study ({e})") from None
        except OSError as e:
            raise StoreError(f"{self.path}: cannot create the study ({e.strerror or e})") from None
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)

    def meta(self) -> dict | None:
        row = self._guard(lambda: self._db.execute("SELECT value FROM ose_meta WHERE key='study'").fetchone())
        return json.loads(row[0]) if row else None

    def init(self, meta: dict) -> None:
        self._guard(lambda: self._db.execute("INSERT OR IGNORE INTO ose_meta VALUES ('study', ?)",
                                             (json.dumps(meta),)))

    def add(self, key: str, record: dict, xi: dict, theta: dict) -> bool:
        values = [record.get(c) for c in COLUMNS]
        values[COLUMNS.index("w")] = _finite(record.get("w"))

        def write():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    f"INSERT OR IGNORE INTO evaluations (key, xi, theta, {', '.join(COLUMNS)}, record, finished_at) "
                    f"VALUES (?, ?, ?, {', '.join('?' * len(COLUMNS))}, ?, ?)",
                    (key, json.dumps(xi), json.dumps(theta), *values, json.dumps(record), time.time()))
                fault("store-write")
                self._db.execute("COMMIT")
                return cur.rowcount == 1
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return self._guard(write)

    def retire(self, key: str) -> bool:
        def move():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(_RETIRED_DDL)
                row = self._db.execute("SELECT record, finished_at FROM evaluations WHERE key=? AND status='failed'",
                                       (key,)).fetchone()
                if row is not None:
                    self._db.execute("INSERT INTO retired (key, record, finished_at, retired_at) VALUES (?, ?, ?, ?)",
                                     (key, row[0], row[1], time.time()))
                    self._db.execute("DELETE FROM evaluations WHERE key=?", (key,))
                self._db.execute("COMMIT")
                return row is not None
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return self._guard(move)

    def retired(self) -> list[dict]:
        def read():
            if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name='retired'").fetchone():
                return []
            return self._db.execute("SELECT key, record, finished_at, retired_at FROM retired ORDER BY id").fetchall()
        return [{**json.loads(rec), "key": key, "finished_at": at, "retired_at": when}
                for key, rec, at, when in self._guard(read)]

    def set_note(self, name: str, value: dict) -> None:
        self._guard(lambda: self._db.execute("INSERT OR REPLACE INTO ose_meta VALUES (?, ?)",
                                             (f"note:{name}", json.dumps(value))))

    def note(self, name: str) -> dict | None:
        row = self._guard(lambda: self._db.execute("SELECT value FROM ose_meta WHERE key=?",
                                                   (f"note:{name}",)).fetchone())
        return json.loads(row[0]) if row else None

    def records(self) -> list[dict]:
        rows = self._guard(lambda: self._db.execute(
            "SELECT key, record, finished_at FROM evaluations ORDER BY id").fetchall())
        return [{**json.loads(rec), "key": key, "finished_at": at} for key, rec, at in rows]

    def close(self) -> None:
        self._db.close()


def _finite(v):
    return None if v is None else (v if v == v and abs(v) != float("inf") else None)


def open_store(out: str | Path, readonly: bool = False, meta: dict | None = None) -> SQLiteStore:
    return SQLiteStore(Path(out) / STUDY_FILE, readonly=readonly, meta=meta)
