"""A study directory: its identity, the one process that runs it, and opening it.

A study is ``OUT/study.db`` (see ``store``) plus ``OUT/study.lock``. One process at a time
runs a study: it holds an exclusive ``flock`` on the lock file for as long as it runs, so a
second ``ose extract`` on the same ``--out`` is refused in one line ("study in use by pid N")
instead of training every candidate again beside the first, and two runs with different
configurations cannot both pass the identity check. The kernel drops the lock when its
holder dies, SIGKILL included, so a killed study resumes with no clean-up. Readers
(``ose status``, ``ose report``) take no lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from .estimate import StepCost, record_work, remaining_seconds
from .store import STUDY_FILE, Store, StoreError, UnreadableStudy, open_store

LOCK_FILE = "study.lock"

# Keys that may change between runs of the same study without changing its numbers (the thread
# count can, in the last digits: see docs/STUDIES.md), and where its files were found.
VOLATILE = {"config.out", "config.threads", "threads", "ose_version", "created_at", "config.executor",
            "config.workers", "config.address", "config.gpus_per_eval", "config.retries", "config.retry_failed"}
VOLATILE_PREFIXES = ("inputs.",)
# Options added after studies were first stored, with the value a study stored before them ran
# under: such a study resumes when that value is asked for again.
IMPLIED = {"config.sort": "total"}
# Facts a newer ose records that mean it would now train or score a resumed study otherwise than its
# stored evaluations were: text encoded without the tokenizer's own padding (and ``data.t_head`` when
# T's own head is now inherited).
CHANGES_NUMBERS = ("data.encoding",)


class StudyInUse(StoreError):
    """Another live process runs this study."""


def _holder(fd: int) -> str:
    # The holder writes its pid right after taking the lock: give it a moment to appear.
    deadline = time.monotonic() + 2.0
    while True:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 32).decode(errors="replace").strip()
        if pid.isdigit() or time.monotonic() > deadline:
            return f"pid {pid}" if pid.isdigit() else "another process"
        time.sleep(0.01)


def _in_use(out: Path, who: str) -> StudyInUse:
    return StudyInUse(f"{out}: study in use by {who}; wait for it to finish, or use another --out")


def holder(out: Path) -> str | None:
    """Who runs the study in ``out`` now ("pid N"), or None; reads, never writes."""
    try:
        fd = os.open(Path(out) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None  # no lock file: no study has run here (or it cannot be read: the real lock will tell)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)


def check_free(out: Path) -> None:
    """Refuse early, without writing anything, when a live process holds the study."""
    who = holder(out)
    if who is not None:
        raise _in_use(out, who)


class StudyLock:
    """The exclusive right to run the study in ``out``, held until ``release`` or death."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = _in_use(out, _holder(self.fd))
            os.close(self.fd)
            raise error from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def check_writable(out: Path) -> None:
    """Refuse an output directory this process cannot write, before any slow work."""
    out = Path(out)
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("/"))
    if not existing.is_dir():
        raise StoreError(f"{existing}: output path exists and is not a directory")
    # os.access reports a read-only file system (EROFS) even to root, and writes nothing.
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StoreError(f"--out {out}: cannot write in {existing} (read-only or no permission)")
    db = out / STUDY_FILE
    if db.exists() and not os.access(db, os.W_OK):
        raise StoreError(f"--out {out}: the study file {db} is read-only")


def read_meta(out: Path) -> dict | None:
    """The identity of the study in ``out`` (read-only), or None if there is none."""
    if not (Path(out) / STUDY_FILE).exists():
        return None
    store = open_store(out, readonly=True)
    try:
        return store.meta()
    finally:
        store.close()


def _flatten(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flatten(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], d


ENDED = "ended"  # the note an adaptive search leaves when it ends before its plan's count (bisection)


def expected_total(meta: dict, store) -> int:
    """How many evaluations the study runs: its plan's count, or what an adaptive search that ended
    early (``--objective cost``'s bisection) ran."""
    ended = store.note(ENDED)
    return ended["total"] if ended else meta["total"]


def differences(stored: dict, meta: dict) -> str:
    """What differs between two study identities, as ``key: old → new`` items."""
    a = {**IMPLIED, **dict(_flatten(stored.get("settings", {})))}
    b = {**IMPLIED, **dict(_flatten(meta.get("settings", {})))}
    diffs = [f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in sorted(set(a) | set(b))
             if k not in VOLATILE and not k.startswith(VOLATILE_PREFIXES) and a.get(k) != b.get(k)
             and not _added_at_default(k, a, b)]
    if not diffs and stored.get("jobs") != meta.get("jobs"):
        diffs.append("the list of evaluations differs")
    return "; ".join(diffs[:3]) + (f" and {len(diffs) - 3} more" if len(diffs) > 3 else "")


def _added_at_default(key: str, a: dict, b: dict) -> bool:
    """An option that a newer ose added, at its default, does not change a study made before it;
    nor does a setting a family gained, at its default; nor a fact a newer ose records about the
    data or T, or W's floor on ê (they follow from the options)."""
    from dataclasses import MISSING, fields

    from .config import ExtractConfig

    if (key in a) == (key in b):
        return False
    if key in b and (key in CHANGES_NUMBERS or (key == "data.t_head" and b[key] == "used")):
        return False
    value = b[key] if key in b else a[key]
    if key.startswith("space.settings."):
        from .families import FAMILIES

        family = a.get("space.family") or b.get("space.family")
        if family not in FAMILIES:
            return False
        defaults = {f.name: f.default for f in fields(FAMILIES.get(family).settings_type)}
        return defaults.get(key[len("space.settings."):], MISSING) == value
    if not key.startswith("config."):
        return key.startswith(("data.", "init", "source.", "error_floor"))
    default = {f.name: f.default for f in fields(ExtractConfig)}.get(key[len("config."):], MISSING)
    return default is not MISSING and value == default


def stored_meta(out: Path, new_study: bool = False) -> tuple[dict | None, bool]:
    """(the identity of the study in ``out`` or None, whether its file is unreadable). An unreadable
    file is refused in one line that names the way out, unless ``new_study`` will set it aside."""
    try:
        return read_meta(out), False
    except UnreadableStudy as e:
        if not new_study:
            raise StoreError(f"{e}; --new-study sets it aside (renamed, not deleted) and starts anew") from None
        return None, True


def set_aside(out: Path, kind: str = "") -> Path:
    """Rename the study file (and its WAL files) so a new study can start, and the old study's
    export (``model/``) and distil state (``.distil/``) with the same stamp; nothing is deleted.
    ``kind`` tags the name (``corrupt-``) of a file that is set aside for being unreadable."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = Path(out) / f"{STUDY_FILE}.{kind}{stamp}"
    n = 1
    while any(Path(f"{target}{suffix}").exists() for suffix in ("", "-wal", "-shm")):  # two in one second
        n += 1
        target = Path(out) / f"{STUDY_FILE}.{kind}{stamp}-{n}"
    for suffix in ("", "-wal", "-shm"):
        src = Path(out) / f"{STUDY_FILE}{suffix}"
        if src.exists():
            src.rename(Path(f"{target}{suffix}"))
    # What ose distil made of the old study (its export, its saved runs) goes with it: beside a new
    # study, an old pick's model would read as the new one's.
    for folder, mark in (("model", "ose.json"), (".distil", None)):
        src = Path(out) / folder
        if src.is_dir() and (mark is None or (src / mark).is_file()):
            src.rename(Path(out) / f"{folder}.{target.name[len(STUDY_FILE) + 1:]}")
    return target


def open_study(out: Path, meta: dict, new_study: bool = False, log=print) -> tuple[Store, StudyLock]:
    """Take the study in ``out`` for this run: new, resumed (same identity), or refused.

    Returns the store and the lock; the caller releases the lock when the run ends.
    """
    lock = StudyLock(Path(out))
    try:
        stored, unreadable = stored_meta(out, new_study)
        if unreadable:
            log(f"set aside the unreadable study file as {set_aside(out, 'corrupt-').name}")
        if stored is not None:
            diff = differences(stored, meta)
            if diff and not new_study:
                raise StoreError(f"{out} holds a study with a different configuration ({diff}); "
                                 f"use another --out or --new-study to set the old one aside")
            if diff:
                log(f"set aside the previous study as {set_aside(out).name}")
        store = open_store(out, meta=meta)
        if store.meta() is None:  # a study file from before identities were written with the tables
            store.init(meta)
        return store, lock
    except BaseException:
        lock.release()
        raise


def status(out: Path) -> dict:
    """``ose status``: progress of a study, read-only (safe while it runs).

    The remaining time weights each job left by its work (see ``estimate``), from what the
    running (or last) run noted in the store.
    """
    from .report.results import settled
    from .strategies.selection import best as best_of

    store = open_store(out, readonly=True)
    try:
        meta, records, note, ended = store.meta(), store.records(), store.note("run"), store.note(ENDED)
    finally:
        store.close()
    if meta is None:
        raise StoreError(f"{Path(out) / STUDY_FILE}: the study holds no configuration yet")
    records = [settled(r, meta["settings"], meta["maximum_point"]) for r in records]  # W as the report has it
    ok = [r for r in records if r.get("status") == "ok"]
    total = ended["total"] if ended else meta["total"]
    best = best_of(records)
    return {"study": str(Path(out) / STUDY_FILE), "total": total, "done": len(ok),
            "failed": len(records) - len(ok), "remaining": total - len(records), "running": holder(out),
            "best_w": best["w"] if best else None,
            "best": {k: best[k] for k in meta["settings"]["space"]["parameters"]} if best else None,
            "elapsed_s": (max(r["finished_at"] for r in records) - meta["created_at"]) if records else 0.0,
            "eta_s": _eta(records, ok, total, note)}


def _eta(records: list[dict], ok: list[dict], total: int, note: dict | None) -> float | None:
    done = [(record_work(r), r["seconds"]) for r in ok]
    if note is None:  # a study from before runs left a note: the mean so far
        mean = sum(r.get("seconds", 0.0) for r in records) / len(records) if records else None
        return None if mean is None else mean * (total - len(records))
    stored = {r["key"] for r in records}
    if note.get("work") is not None:
        left = [w for k, w in note["work"].items() if k not in stored]
    else:
        left = [note["mean_work"]] * (total - len(records))
    cost = StepCost(**note["step_cost"]) if note.get("step_cost") else None
    return remaining_seconds(done, left, note["steps"], note["parallel"], cost)
