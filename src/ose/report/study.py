"""Outputs rebuilt from the study store alone: ``ose report`` and ``ose status``."""

from __future__ import annotations

import time
from pathlib import Path

from ..space import space_from_dict
from ..store import STUDY_FILE, Store, open_store
from . import html, results

# Keys that may change between runs of the same study without changing its numbers.
VOLATILE = {"config.out", "config.threads", "threads", "ose_version", "created_at", "config.executor",
            "config.workers", "config.address", "config.gpus_per_eval", "config.retries"}


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


def differences(stored: dict, meta: dict) -> str:
    """What differs between two study identities, as ``key: old → new`` items."""
    a = dict(_flatten(stored.get("settings", {})))
    b = dict(_flatten(meta.get("settings", {})))
    diffs = [f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in sorted(set(a) | set(b))
             if k not in VOLATILE and a.get(k) != b.get(k)]
    if not diffs and stored.get("jobs") != meta.get("jobs"):
        diffs.append("the list of evaluations differs")
    return "; ".join(diffs[:3]) + (f" and {len(diffs) - 3} more" if len(diffs) > 3 else "")


def set_aside(out: Path) -> Path:
    """Rename the study file (and its WAL files) so a new study can start; nothing is deleted."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = Path(out) / f"{STUDY_FILE}.{stamp}"
    for suffix in ("", "-wal", "-shm"):
        src = Path(out) / f"{STUDY_FILE}{suffix}"
        if src.exists():
            src.rename(Path(f"{target}{suffix}"))
    return target


def ordered_records(store: Store, meta: dict) -> list[dict]:
    """Stored evaluations in the study's job order (the order an uninterrupted run has); an
    adaptive strategy's, whose jobs are not known up front, in Ξ's order (by p, then i), which
    unlike the order they finished in is the same on every executor."""
    rank = {k: i for i, k in enumerate(meta["jobs"] or [])}
    recs = sorted(store.records(), key=lambda r: (rank.get(r["key"], len(rank)), r["params"], r["ops"], r["key"]))
    return [{k: v for k, v in r.items() if k not in ("key", "finished_at")} for r in recs]


def build_document(store: Store) -> dict:
    meta = store.meta()
    if meta is None:
        raise ValueError("the study holds no configuration")
    records = ordered_records(store, meta)
    doc = results.document(meta["settings"], meta["maximum_point"], records)
    doc["settings"]["train_seconds"] = sum(r.get("seconds", 0.0) for r in records)
    return doc


def write_report(out: Path, store: Store) -> tuple[dict, list[Path]]:
    doc = build_document(store)
    pick = doc["best"]
    best_config = None
    if pick:
        space = space_from_dict(doc["settings"]["space"], source=str(Path(out) / STUDY_FILE))
        best_config = space.family.config({k: pick[k] for k in space.family.parameters}, space.settings)
    files = results.write_outputs(Path(out), doc, best_config)
    return doc, files + html.write_html(Path(out), doc, _latency(out))


def _latency(out: Path) -> dict | None:
    """The study's measured latency, if ``ose latency`` or ``--speed latency`` left one."""
    from .. import latency

    path = Path(out) / latency.LATENCY_FILE
    try:
        return latency.load(path) if path.is_file() else None
    except ValueError:
        return None


def rebuild(out: Path) -> tuple[dict, list[Path]]:
    """``ose report``: every output from the store alone, without training."""
    store = open_store(out, readonly=True)
    try:
        return write_report(out, store)
    finally:
        store.close()


def status(out: Path) -> dict:
    """``ose status``: progress of a study, read-only (safe while it runs)."""
    store = open_store(out, readonly=True)
    try:
        meta = store.meta()
        records = store.records()
    finally:
        store.close()
    if meta is None:
        raise ValueError("the study holds no configuration yet")
    done = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") != "ok"]
    total = meta["total"]
    remaining = total - len(records)
    mean = sum(r.get("seconds", 0.0) for r in records) / len(records) if records else None
    best = results.best(records)
    return {"study": str(Path(out) / STUDY_FILE), "total": total, "done": len(done), "failed": len(failed),
            "remaining": remaining, "best_w": best["w"] if best else None,
            "best": {k: best[k] for k in meta["settings"]["space"]["parameters"]} if best else None,
            "elapsed_s": (max(r["finished_at"] for r in records) - meta["created_at"]) if records else 0.0,
            "eta_s": mean * remaining if mean is not None else None}
