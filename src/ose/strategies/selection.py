"""The last step of every search: ξ* = argmax W, and the Pareto front of (p, i, ê).

Both read evaluation records (``ose.record``) and look at finished ones only.
"""

from __future__ import annotations


def finished(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("status") == "ok"]


def best(records: list[dict]) -> dict | None:
    """argmax W over the finished evaluations. Ties go to the smaller p, then the smaller i, then
    the evaluation first in the study's order (for one ξ under several θ: Θ's order)."""
    done = finished(records)
    return max(done, key=lambda r: (r["w"], -r["params"], -r["ops"])) if done else None


def pareto_front(records: list[dict]) -> list[dict]:
    """Evaluations not dominated in (p, i, ê), all three minimised."""
    done = finished(records)

    def dominates(a, b):
        ka, kb = (a["params"], a["ops"], a["error"]), (b["params"], b["ops"], b["error"])
        return all(x <= y for x, y in zip(ka, kb)) and ka != kb

    front = [r for r in done if not any(dominates(o, r) for o in done)]
    return sorted(front, key=lambda r: (r["params"], r["ops"], r["error"]))
