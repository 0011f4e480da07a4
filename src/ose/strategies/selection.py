"""The last step of every search: ξ* = argmax W, and the Pareto front of (p, i, ê).

Both read evaluation records (``ose.record``) and look at finished ones only.
"""

from __future__ import annotations


def finished(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("status") == "ok"]


OBJECTIVES = ("w", "accuracy", "cost")


def best(records: list[dict], objective: str = "w", limit: float | None = None) -> dict | None:
    """ξ* over the finished evaluations: argmax W (``w``, the paper's), argmin ê (``accuracy``:
    the most accurate candidate of those the budgets let through), or (``cost``) the cheapest, by i
    then p, whose ê is at most ``limit`` (where none is: the most accurate). Ties go to the smaller
    p, then the smaller i, then the evaluation first in the study's order (for one ξ under several
    θ: Θ's order)."""
    done = finished(records)
    if not done:
        return None
    if objective == "cost":
        reaching = [r for r in done if limit is not None and r["error"] <= limit]
        if reaching:
            return min(reaching, key=lambda r: (r["ops"], r["params"], r["error"]))
        objective = "accuracy"
    if objective == "accuracy":
        return min(done, key=lambda r: (r["error"], r["params"], r["ops"]))
    return max(done, key=lambda r: (r["w"], -r["params"], -r["ops"]))


def pareto_front(records: list[dict]) -> list[dict]:
    """Evaluations not dominated in (p, i, ê), all three minimised."""
    done = finished(records)

    def dominates(a, b):
        ka, kb = (a["params"], a["ops"], a["error"]), (b["params"], b["ops"], b["error"])
        return all(x <= y for x, y in zip(ka, kb)) and ka != kb

    front = [r for r in done if not any(dominates(o, r) for o in done)]
    return sorted(front, key=lambda r: (r["params"], r["ops"], r["error"]))


TIE_SHARE = 0.95   # the pick beats a candidate beyond B's noise when its W is higher in this share of resamples
RESAMPLES = 2000


def margin(records: list[dict], pick: dict | None, floor: float | None, resamples: int = RESAMPLES,
           seed: int = 0, objective: str = "w") -> dict | None:
    """How sure the pick is: for every other finished candidate measured on the same rows of B,
    the share of paired resamples of B (the same rows drawn for both) in which the pick's W is the
    higher (under ``objective="accuracy"``: its ê the lower), ties counted half. ``runner_up`` is the candidate of the next highest W; ``ties`` those
    the pick does not beat in at least 95% of resamples: on this B they are as good, and W measured
    on B chose among them (the rule of ``best``). None where the records keep no rows of B
    (evaluations stored before ose kept them) or nothing else finished."""
    import numpy as np

    from ..stats import paired_higher

    if pick is None or "on_b" not in pick:
        return None
    rows = pick["on_b"]
    others = [r for r in finished(records) if r is not pick and "on_b" in r
              and len(r["on_b"]["values"]) == len(rows["values"])]
    if not others:
        return None
    floor = floor or 1e-12
    if objective == "accuracy":
        others.sort(key=lambda r: r["error"])
        score = lambda e: -e  # noqa: E731  (the lower ê wins)
    else:
        others.sort(key=lambda r: -r["w"])
        # W = (1 − p/T)(1 − i/T) / max(ê, floor): the size factor is fixed, only ê is resampled
        sizes = np.array([r["w"] * max(r["error"], floor) for r in [pick, *others]])[:, None]
        score = lambda e: sizes / np.maximum(e, floor)  # noqa: E731
    group = [pick, *others]
    shares = paired_higher([r["on_b"]["values"] for r in group], rows.get("targets") or [1] * len(rows["values"]),
                           score, resamples, seed)[1:]
    return {"runner_up": others[0], "p_higher": shares[0], "resamples": resamples, "rows": len(rows["values"]),
            "ties": [{"record": r, "p_higher": p} for r, p in zip(others, shares) if p < TIE_SHARE]}
