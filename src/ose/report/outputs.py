"""Every output of a study, rebuilt from its store alone: ``ose report`` and ``ose status``."""

from __future__ import annotations

from pathlib import Path

from ..grid import table
from ..space import arch_key, space_from_dict
from ..store import STUDY_FILE, Store, open_store
from ..study import expected_total
from . import html, results

REFERENCE = "T|"  # the key prefix of T's own evaluation, kept apart from the candidates'


def ordered_records(store: Store, meta: dict) -> list[dict]:
    """Stored evaluations in the study's job order (the order an uninterrupted run has); an
    adaptive strategy's, whose jobs are not known up front, in the order the study sorted Ξ,
    which unlike the order they finished in is the same on every executor."""
    rank = {k: i for i, k in enumerate(meta["jobs"] or [])}
    records = [r for r in store.records() if not r["key"].startswith(REFERENCE)]
    place = _xi_places(meta) if records and meta["jobs"] is None else {}

    def key(r):
        return rank.get(r["key"], len(rank)), place.get(arch_key(_xi(r, meta)), len(place)), r["key"]

    return [{k: v for k, v in r.items() if k not in ("key", "finished_at")} for r in sorted(records, key=key)]


def _xi(record: dict, meta: dict) -> dict:
    return {k: record[k] for k in meta["settings"]["space"]["parameters"]}


def _xi_places(meta: dict) -> dict[str, int]:
    """Each architecture's place in Ξ as the study sorted it; studies from before ``sort``
    existed sorted by the whole network's p, then i."""
    space = space_from_dict(meta["settings"]["space"], source=STUDY_FILE)
    sort = meta["settings"]["config"].get("sort", "total")
    ordered = table(space, sort)
    return {arch_key(dict(zip(ordered.names, row))): i for i, row in enumerate(ordered.xi.tolist())}


def build_document(store: Store) -> dict:
    meta = store.meta()
    if meta is None:
        raise ValueError("the study holds no configuration")
    records = ordered_records(store, meta)
    reference = [r for r in store.records() if r["key"].startswith(REFERENCE)]
    maximum_point = dict(meta["maximum_point"])
    if reference:  # T's own short run (--init inherit): what the candidates' ê compares with
        maximum_point["reference"] = {k: v for k, v in reference[0].items()
                                      if k in ("error", "loss", "steps", "seconds", "status", "message")}
    doc = results.document(meta["settings"], maximum_point, records)
    doc["progress"] = {"stored": len(records) + len(reference), "total": expected_total(meta, store)}
    doc["settings"]["train_seconds"] = sum(r.get("seconds", 0.0) for r in records + reference)
    return doc


def write_report(out: Path, store: Store, others: list[dict] = ()) -> tuple[dict, list[Path]]:
    doc = build_document(store)
    pick = doc["best"]
    best_config = None
    if pick:
        space = space_from_dict(doc["settings"]["space"], source=str(Path(out) / STUDY_FILE))
        best_config = space.family.hf_config({k: pick[k] for k in space.family.parameters}, space.settings)
        labels = doc["settings"].get("data", {}).get("labels")
        if labels and getattr(space.settings, "num_labels", None) == len(labels):
            best_config.id2label = dict(enumerate(labels))
            best_config.label2id = {name: i for i, name in enumerate(labels)}
    exported = exports(Path(out), store.meta())
    if exported:
        doc["exports"] = exported
    files = results.write_outputs(Path(out), doc, best_config)
    return doc, files + html.write_html(Path(out), doc, _latency(out), others)


def exports(out: Path, meta: dict) -> list[dict]:
    """What ``ose distil`` exported of this study into folders of ``out`` (``model/`` by default):
    each folder's card facts, for the report; exports of a study set aside are not this study's."""
    import json

    from ..export import FACTS

    found = []
    for facts in sorted(Path(out).glob(f"*/{FACTS}")):
        try:
            card = json.loads(facts.read_text())
        except (OSError, ValueError):
            continue
        if (card.get("run") or {}).get("study") == meta["created_at"]:
            found.append({"folder": facts.parent.name, **{k: card.get(k) for k in (
                "architecture", "model", "T", "teacher", "test", "latency_seconds", "params", "T_params")}})
    return found


def _latency(out: Path) -> dict | None:
    """The study's measured latency, if ``ose latency`` or ``--speed latency`` left one."""
    from .. import latency

    path = Path(out) / latency.LATENCY_FILE
    try:
        return latency.load(path) if path.is_file() else None
    except ValueError:
        return None


def rebuild(out: Path, compare: list[Path] = ()) -> tuple[dict, list[Path]]:
    """``ose report``: every output from the store alone, without training; ``compare``: other
    studies of the same space whose evaluations join the figure by init mode."""
    others = [read_document(other) for other in compare]
    store = open_store(out, readonly=True)
    try:
        return write_report(out, store, others)
    finally:
        store.close()


def read_document(out: Path) -> dict:
    """The results document of the study in ``out``, read-only."""
    store = open_store(out, readonly=True)
    try:
        return build_document(store)
    finally:
        store.close()
