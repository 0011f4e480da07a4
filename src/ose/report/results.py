"""results.json, results.csv, pareto.csv and best/config.json of one extraction."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .._faults import fault
from .table import csv_text, text_table

# ``latency``: seconds per forward pass at the W batch size, stored only by --speed latency studies.
COLUMNS = ["D", "A", "H", "I", "lr", "momentum", "batch_size", "params", "params_effective", "mults", "adds",
           "other", "ops", "latency", "error", "loss", "w", "steps", "seconds", "status", "message"]


def ok(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("status") == "ok"]


def best(records: list[dict]) -> dict | None:
    """argmax W over the finished evaluations (ties: the cheaper, by p, then i)."""
    done = ok(records)
    return max(done, key=lambda r: (r["w"], -r["params"], -r["ops"])) if done else None


def pareto_front(records: list[dict]) -> list[dict]:
    """Evaluations not dominated in (p, i, ê), all three minimised."""
    done = ok(records)

    def dominates(a, b):
        ka, kb = (a["params"], a["ops"], a["error"]), (b["params"], b["ops"], b["error"])
        return all(x <= y for x, y in zip(ka, kb)) and ka != kb

    front = [r for r in done if not any(dominates(o, r) for o in done)]
    return sorted(front, key=lambda r: (r["params"], r["ops"], r["error"]))


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def document(settings: dict, maximum_point: dict, records: list[dict]) -> dict:
    clean = [{k: _json_safe(v) for k, v in r.items()} for r in records]
    b = best(records)
    return {"settings": settings, "maximum_point": maximum_point, "evaluations": clean,
            "best": {k: _json_safe(v) for k, v in b.items()} if b else None,
            "pareto": [{k: _json_safe(v) for k, v in r.items()} for r in pareto_front(records)]}


def write_outputs(out: Path, doc: dict, best_config=None) -> list[Path]:
    """Write every output file; ``best_config`` is a transformers config of the pick."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.csv", out / "pareto.csv"]
    _atomic_write(paths[0], json.dumps(doc, indent=2))
    fault("report-write")
    _atomic_write(paths[1], csv_text(doc["evaluations"], COLUMNS))
    _atomic_write(paths[2], csv_text(doc["pareto"], COLUMNS))
    if best_config is not None:
        best_config.save_pretrained(out / "best")
        paths.append(out / "best" / "config.json")
    return paths


def speed(doc: dict) -> dict:
    """How the study's W measured speed: ``{"kind": "ops"}``, or ``{"kind": "latency",
    "batch_size": b, "T_seconds": s}``; documents older than --speed have no entry and used ops."""
    return doc["settings"].get("speed") or {"kind": "ops"}


def uses_latency(doc: dict) -> bool:
    return speed(doc)["kind"] == "latency"


def factors(doc: dict, record: dict) -> dict[str, float]:
    """The ratios to T that the record's W was computed from: p/T and i/T, or p/T and lat/T
    (measured latency over T's, at the W batch size) in a --speed latency study."""
    t = doc["maximum_point"]
    size = {"p/T": record["params"] / t["params"]}
    if uses_latency(doc):
        return {**size, "lat/T": record["latency"] / speed(doc)["T_seconds"]}
    return {**size, "i/T": record["ops"] / t["ops"]}


def unfinished(doc: dict) -> str | None:
    """Why the document is partial (a study stopped or still running), or None if it is whole."""
    progress = doc.get("progress")
    if not progress or progress["stored"] >= progress["total"]:
        return None
    return (f"PARTIAL: the study is unfinished, {progress['stored']} of {progress['total']} evaluations "
            f"stored; the pick is the best so far, not the search's answer (resume with the same command)")


def pick_line(doc: dict) -> str:
    """The last line of a run: ξ*, its W and the factors W was computed from."""
    pick = doc["best"]
    xi = {k: pick[k] for k in doc["maximum_point"]["architecture"]}
    ratios = "  ".join(f"{k} = {v:.3f}" for k, v in factors(doc, pick).items())
    name = "best so far" if unfinished(doc) else "ξ*"
    line = f"{name} = {xi}  W = {float(pick['w']):.4g}  ê = {pick['error']:.4f}  {ratios}"
    if not uses_latency(doc):
        return line
    s = speed(doc)
    return (f"{line}  (lat/T = {1000 * pick['latency']:.3g} ms / {1000 * s['T_seconds']:.3g} ms "
            f"at batch {s['batch_size']})")


def summary(doc: dict, top: int = 5) -> str:
    """The end-of-run table: the top architectures by W, and the pick against T."""
    done = sorted(ok(doc["evaluations"]), key=lambda r: -float(r["w"]))[:top]
    rows = [{"rank": i + 1, "D": r["D"], "A": r["A"], "H": r["H"], "I": r["I"], "lr": r["lr"],
             "W": float(r["w"]), "error": r["error"], **factors(doc, r), "steps": r["steps"]}
            for i, r in enumerate(done)]
    failed = [r for r in doc["evaluations"] if r.get("status") != "ok"]
    lines = [text_table(rows)] if rows else ["no evaluation finished"]
    if unfinished(doc):
        lines.insert(0, unfinished(doc))
    if done and uses_latency(doc):
        s = speed(doc)
        lines.append(f"lat/T: measured forward latency at batch {s['batch_size']} over T's "
                     f"{1000 * s['T_seconds']:.3g} ms; W uses it in place of i/T")
    if failed:
        lines.append(f"{len(failed)} evaluation(s) failed: " +
                     "; ".join(f"D={r['D']} A={r['A']} H={r['H']} I={r['I']}: {r['message']}" for r in failed))
    return "\n".join(lines)
