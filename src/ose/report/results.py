"""results.json, results.csv, pareto.csv and best/config.json of one extraction."""

from __future__ import annotations

import math
import os
from pathlib import Path

from .. import jsonout
from .._faults import fault
from ..costs import error_floor, w_coefficient
from ..record import columns
from ..stats import error_interval
from ..strategies.selection import TIE_SHARE, best, finished, margin, pareto_front
from .table import csv_text, text_table

def parameter_names(doc: dict) -> list[str]:
    """The family's architectural parameters (D, A, H, I for BERT), in order."""
    return list(doc["maximum_point"]["architecture"])


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def floor_of(settings: dict) -> float | None:
    """The least ê the study's W divides by: as stored, or, for a study made before W had a floor,
    from B's size (the same rule); None if the study does not record B's size."""
    if "error_floor" in settings:
        return settings["error_floor"]
    targets = settings.get("data", {}).get("heldout_targets")
    return error_floor(targets) if targets else None


def settled(record: dict, settings: dict, t: dict) -> dict:
    """A record scored before W had a floor (ê = 0 gave W = ∞), scored again with it from its own
    numbers; any other record as it is. ``t``: the study's maximum point (its p and i)."""
    w, floor = record.get("w"), floor_of(settings)
    if record.get("status") != "ok" or w is None or math.isfinite(w) or floor is None:
        return record
    s = settings.get("speed") or {"kind": "ops"}
    i, i_max = (record["latency"], s["T_seconds"]) if s["kind"] == "latency" else (record["ops"], t["ops"])
    return {**record, "w": w_coefficient(record["params"], i, record["error"], t["params"], i_max, strict=False,
                                         floor=floor)}


def document(settings: dict, maximum_point: dict, records: list[dict]) -> dict:
    """The results document; numbers that are not finite stay floats here and are written as null.
    Each evaluation whose rows of B were kept gets ê's 95% interval, and the pick its margin
    (``selection.margin``); the rows themselves stay in the store."""
    records = [settled(r, settings, maximum_point) for r in records]
    names = list(maximum_point["architecture"])
    goal = objective(settings)
    limit = cost_goal(settings, maximum_point)
    # --objective cost has no runner-up to beat: its question is whether the pick reaches the limit
    sure = None if goal == "cost" else margin(records, best(records, goal), floor_of(settings), objective=goal)
    records = [_with_interval(r, metric(settings)) for r in records]
    pick = best(records, goal, limit and limit["limit"])
    doc = {"settings": settings, "maximum_point": maximum_point, "evaluations": records,
           "best": pick, "pareto": pareto_front(records)}
    if limit:
        done = [r for r in records if r.get("status") == "ok"]
        doc["cost"] = {**limit, "trained": len(done), "reached": bool(pick) and pick["error"] <= limit["limit"]}
    if sure:
        def arch(r):
            return {n: r[n] for n in names}

        doc["margin"] = {"runner_up": {**arch(sure["runner_up"]), "w": sure["runner_up"]["w"],
                                       "error": sure["runner_up"]["error"]},
                         "p_higher": sure["p_higher"], "resamples": sure["resamples"], "rows": sure["rows"],
                         "tie_share": TIE_SHARE,
                         "ties": [{**arch(t["record"]), "w": t["record"]["w"], "p_higher": t["p_higher"]}
                                  for t in sure["ties"]]}
    return doc


def cost_goal(settings: dict, maximum_point: dict) -> dict | None:
    """``--objective cost --keep F``: F, T's ê on B, and the most ê a candidate may have (None for
    the other objectives, or while T's ê is not known)."""
    config = settings.get("config", {})
    if config.get("objective") != "cost":
        return None
    given = maximum_point.get("as_given") or maximum_point.get("reference")
    if not given or given.get("status", "ok") != "ok":
        return None
    return {"keep": config["keep"], "t_error": given["error"], "limit": 1 - config["keep"] * (1 - given["error"])}


def cost_line(doc: dict) -> str | None:
    """What ``--objective cost`` found, what it trained, and what it assumed."""
    c, pick = doc.get("cost"), doc.get("best")
    if not c or not pick:
        return None
    if not c["reached"]:
        return (f"--objective cost --keep {c['keep']:g}: none of the {c['trained']} candidate(s) trained reached ê ≤ "
                f"{c['limit']:.4f} on B ({c['keep']:g} of T's accuracy {1 - c['t_error']:.4f}); the pick is the most "
                f"accurate of them")
    return (f"--objective cost --keep {c['keep']:g}: the pick is the cheapest (by i, then p) of the {c['trained']} "
            f"candidate(s) trained whose ê on B is at most {c['limit']:.4f} ({c['keep']:g} of T's accuracy "
            f"{1 - c['t_error']:.4f}); bisection assumed ê does not rise with the cost, so cheaper candidates it did "
            f"not train are not known to miss; `ose distil RUN --keep {c['keep']:g}` verifies the floor on the test part")


def metric(settings: dict) -> str:
    """What ê measures (``--metric``): ``error`` in every study made before the option."""
    return settings.get("config", {}).get("metric") or "error"


def objective(settings: dict) -> str:
    """What chose the pick: ``w`` (the paper's W, and every study before --objective) or ``accuracy``."""
    return settings.get("config", {}).get("objective") or "w"


def _with_interval(record: dict, metric: str) -> dict:
    if "on_b" not in record:
        return record
    out = {k: v for k, v in record.items() if k != "on_b"}
    if out.get("status") == "ok":
        out["error_interval_95"] = list(error_interval(record["on_b"], metric))
    return out


def write_outputs(out: Path, doc: dict, best_config=None) -> list[Path]:
    """Write every output file; ``best_config`` is a transformers config of the pick."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.csv", out / "pareto.csv"]
    _atomic_write(paths[0], jsonout.dumps(doc, indent=2))
    fault("report-write")
    names = parameter_names(doc)
    _atomic_write(paths[1], csv_text(doc["evaluations"], columns(names)))
    _atomic_write(paths[2], csv_text(doc["pareto"], columns(names)))
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
    if objective(doc["settings"]) == "accuracy":
        line += "  (--objective accuracy: the lowest ê of the candidates within the budgets)"
    elif objective(doc["settings"]) == "cost":
        line += "  (--objective cost: the cheapest predicted to keep --keep of T's accuracy)"
    if not uses_latency(doc):
        return line
    s = speed(doc)
    return (f"{line}  (lat/T = {1000 * pick['latency']:.3g} ms / {1000 * s['T_seconds']:.3g} ms "
            f"at batch {s['batch_size']})")


def source_line(doc: dict) -> str | None:
    """What T was, its own short-run ê, and what the pick keeps of it (studies ``--from`` a checkpoint)."""
    source, t = doc["settings"].get("source"), doc["maximum_point"]
    if not source:
        return None
    arch = ", ".join(f"{k}={v}" for k, v in t["architecture"].items())
    line = (f"T: {source['from']} ⟨{arch}⟩, p = {t['params']:,}; candidates start from its weights"
            if doc["settings"].get("init") == "inherit" else f"T: {source['from']} ⟨{arch}⟩; candidates start fresh")
    ref, pick, given = t.get("reference"), doc.get("best"), t.get("as_given")
    if given:
        lo, hi = given["accuracy_interval_95"]
        line += (f"; T as given (its own head, untrained here): error {given['error']:.4f} on B "
                 f"(accuracy 95%: [{lo:.3f}, {hi:.3f}])")
    if ref and ref.get("status") == "ok":
        line += f"; T's own ê after {ref['steps']} steps: {ref['error']:.4f}"
        size = pick and (f"{pick['params'] / t['params']:.0%} of its parameters and "
                         f"{pick['ops'] / t['ops']:.1%} of its operations")
        if pick and metric(doc["settings"]) != "error":
            line += f"; the pick has {size}"  # ê is not an error rate: no share of T's accuracy to give
        elif pick and ref["error"] < 1 and pick["error"] <= 1:
            line += f"; the pick keeps {(1 - pick['error']) / (1 - ref['error']):.0%} of T's accuracy with {size}"
    return line


def separation(doc: dict) -> str | None:
    """Why ê may not tell the candidates apart (W then ranks by size alone), or None."""
    import math

    done, data = finished(doc["evaluations"]), doc["settings"].get("data", {})
    n = data.get("heldout_targets")
    if len(done) < 2 or not n or metric(doc["settings"]) != "error":
        return None
    errors = [float(r["error"]) for r in done]
    mean = sum(errors) / len(errors)
    sigma = math.sqrt(max(mean * (1 - mean), 1e-12) / n)
    chance = data.get("majority_error")
    if chance is not None and min(errors) >= chance - sigma:
        # a study --from a checkpoint already starts from T: only the steps are left to try
        remedy = "train longer (--steps)" if doc["settings"].get("source") else \
            "train longer (--steps) or start from a pretrained T (--from)"
        return (f"warning: every candidate's ê is at chance (answering B's most common target errs {chance:.3f}); "
                f"W ranks them by size alone: {remedy}")
    if max(errors) - min(errors) <= 2 * sigma:
        return (f"warning: ê spans only {max(errors) - min(errors):.3f} across the candidates, within the sampling "
                f"noise of B (±{sigma:.3f} over {n:,} targets); W ranks them by size alone")
    return None


def divisor(doc: dict, record: dict) -> float:
    """What the record's W divided by: its ê, or the study's floor where ê fell below it."""
    return max(record["error"], floor_of(doc["settings"]) or 0.0)


def floor_line(doc: dict) -> str | None:
    """Which evaluations' ê fell below the floor, so that W divided by the floor instead, or None."""
    floor = floor_of(doc["settings"])
    low = [r for r in finished(doc["evaluations"]) if floor is not None and r["error"] < floor]
    if not low:
        return None
    names = parameter_names(doc)
    shown = "; ".join(" ".join(f"{n}={r[n]}" for n in names) for r in low[:3])
    more = f" and {len(low) - 3} more" if len(low) > 3 else ""
    return (f"note: ê on B was below its floor for {len(low)} evaluation(s) ({shown}{more}): W divides by the floor, "
            f"{floor:.3g} (half of one of B's targets), so these rank by p and i alone (docs/SEARCH.md)")


def summary(doc: dict, top: int = 5) -> str:
    """The end-of-run table: the top architectures by W, and the pick against T."""
    done = sorted(finished(doc["evaluations"]), key=lambda r: -float(r["w"]))[:top]
    names = parameter_names(doc)
    rows = [{"rank": i + 1, **{n: r[n] for n in names}, "lr": r["lr"],
             "W": float(r["w"]), "error": r["error"],
             **({"ê 95%": "[{:.3f}, {:.3f}]".format(*r["error_interval_95"])} if "error_interval_95" in r else {}),
             **factors(doc, r), "steps": r["steps"]}
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
                     "; ".join(f"{' '.join(f'{n}={r[n]}' for n in names)}: {r['message']}" for r in failed))
    lines += [line for line in (cost_line(doc), margin_line(doc), tie_line(doc), floor_line(doc), source_line(doc),
                                separation(doc)) if line]
    lines += [export_line(e) for e in doc.get("exports", [])]
    return "\n".join(lines)


def _arch(doc: dict, r: dict) -> str:
    return "⟨" + ", ".join(f"{n}={r[n]}" for n in parameter_names(doc)) + "⟩"


def _sample(doc: dict) -> tuple[str, str, str]:
    """What ê was resampled over: (its noise, its units, the sample), as the summary words them."""
    if metric(doc["settings"]) == "train-loss":
        return "the training loss's noise", "training steps of the last quarter", "those steps"
    return "B's noise", "rows of B", "B"


def margin_line(doc: dict) -> str | None:
    """The pick's ê with its interval, and how often its W beats the runner-up's on resamples of B."""
    m, pick = doc.get("margin"), doc.get("best")
    if not m or not pick or "error_interval_95" not in pick:
        return None
    lo, hi = pick["error_interval_95"]
    if objective(doc["settings"]) == "accuracy":
        than = (f"its ê is lower than the runner-up {_arch(doc, m['runner_up'])}'s "
                f"({m['runner_up']['error']:.4f})")
    else:
        than = f"its W is higher than the runner-up {_arch(doc, m['runner_up'])}'s (W {m['runner_up']['w']:.4g})"
    _, units, sample = _sample(doc)
    return (f"margin: the pick's ê {pick['error']:.4f} [{lo:.4f}, {hi:.4f}] (95%, {m['rows']:,} {units}); {than} "
            f"in {m['p_higher']:.0%} of {m['resamples']:,} paired resamples of {sample}")


def tie_line(doc: dict) -> str | None:
    """One sentence when the pick does not beat some candidates beyond ê's noise, and the rule that chose."""
    m = doc.get("margin")
    if not m or not m["ties"]:
        return None
    shown = ", ".join(f"{_arch(doc, t)} ({t['p_higher']:.0%})" for t in m["ties"][:4])
    more = f" and {len(m['ties']) - 4} more" if len(m["ties"]) > 4 else ""
    what, rule = (("ê is lower", "the lowest ê") if objective(doc["settings"]) == "accuracy" else
                  ("W is higher", "the highest W"))
    noise, _, sample = _sample(doc)
    return (f"tie: within {noise} the pick ties {len(m['ties'])} other candidate(s), {shown}{more}, since its {what} "
            f"in fewer than {m['tie_share']:.0%} of resamples; {rule} measured on {sample.replace('B', 'this B')} "
            f"chose among "
            f"them (docs/SEARCH.md, ties within noise), and on this evidence each is as good a choice")


def export_line(e: dict) -> str:
    """One exported model of the study (``ose distil``), measured on the test part."""
    lo, hi = e["model"]["interval_95"]
    line = (f"exported {e['folder']}/: ⟨{', '.join(f'{k}={v}' for k, v in e['architecture'].items())}⟩, test "
            f"accuracy {e['model']['accuracy']:.4f} [{lo:.3f}, {hi:.3f}] on {e['test']['rows']:,} {e['test']['row_unit']}")
    if e.get("T"):
        line += f" (T {e['T']['accuracy']:.4f}, {e['model']['accuracy'] / e['T']['accuracy']:.3f} of T's)"
    lat = e.get("latency_seconds") or {}
    speed = [f"{lat['T'][b] / lat['model'][b]:.1f}× at batch {b}" for b in lat.get("model", {})]
    return line + (f"; CPU speed-up over T {', '.join(speed)}" if speed else "")
