"""Every output of a study, rebuilt from its store alone: ``ose report`` and ``ose status``."""

from __future__ import annotations

from pathlib import Path

from ..space import space_from_dict
from ..store import STUDY_FILE, Store, open_store
from . import html, results


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
    doc["progress"] = {"stored": len(records), "total": meta["total"]}
    doc["settings"]["train_seconds"] = sum(r.get("seconds", 0.0) for r in records)
    return doc


def write_report(out: Path, store: Store) -> tuple[dict, list[Path]]:
    doc = build_document(store)
    pick = doc["best"]
    best_config = None
    if pick:
        space = space_from_dict(doc["settings"]["space"], source=str(Path(out) / STUDY_FILE))
        best_config = space.family.hf_config({k: pick[k] for k in space.family.parameters}, space.settings)
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
