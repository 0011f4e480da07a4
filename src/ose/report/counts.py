"""Rows and JSON documents for ``ose space`` and ``ose count``."""

from __future__ import annotations

from ..costs import Cost
from ..space import ABnC, SearchSpace

RATIO_KEYS = ("params", "params_effective", "mults", "adds", "other", "ops")


def ratios(cost: Cost, ref: Cost) -> dict[str, float]:
    a, b = cost.as_dict(), ref.as_dict()
    return {k: a[k] / b[k] if b[k] else float("nan") for k in RATIO_KEYS}


def cost_row(xi: dict, cost: Cost, ref: Cost) -> dict:
    """A flat row: ξ, the integer counts, and their ratios to the reference (T)."""
    d = cost.as_dict()
    row = dict(xi)
    row.update({k: d[k] for k in RATIO_KEYS})
    row.update({f"{k}/T": v for k, v in ratios(cost, ref).items() if k in ("params", "params_effective", "ops")})
    return row


def space_rows(space: SearchSpace, sort: str = "intermediate", candidates: list | None = None) -> list[dict]:
    return [cost_row(c.xi, c.cost, space.max_cost) for c in (candidates or space.candidates(sort))]


def space_document(space: SearchSpace, sort: str = "intermediate", candidates: list | None = None) -> dict:
    """``ose space --format json``: T, every architecture (or ``candidates``, those within budgets)
    with its integer keys, and ABⁿC."""
    def entry(xi, cost):
        return {**xi, **{k: v for k, v in cost.as_dict().items()}}

    return {"space": space.name, "family": space.family.name, "settings": space.to_dict()["settings"],
            "sort": sort, "maximum_point": entry(space.maximum_point, space.max_cost),
            "architectures": [entry(c.xi, c.cost) for c in (candidates or space.candidates(sort))],
            "abnc": space.abnc().as_dict()}


SORT_NAMES = {"intermediate": "sorted by the layers B (p, then i)",
              "total": "sorted by the whole network (p, then i)"}


def abnc_counts(abnc: ABnC) -> str:
    n = abnc.size
    return (f"part B costs more than A + C for {abnc.params} of {n} architectures in parameters, "
            f"{abnc.ops} of {n} in operations")


def abnc_line(abnc: ABnC) -> str:
    """The count ``ose space`` prints under its table."""
    return f"ABⁿC: {abnc_counts(abnc)}; the FPTAS guarantee assumes all (see docs/SEARCH.md)"


def abnc_note(abnc: ABnC) -> str:
    """What ``ose extract`` says before an FPTAS search of a space that breaks ABⁿC: what it means for
    the run, and that the user need not act (the presets themselves break it in parameters)."""
    return (f"note: the FPTAS's (1 − ε) guarantee does not hold for this space ({abnc_counts(abnc)}; it assumes "
            f"all); the search runs the same and needs no change (docs/SEARCH.md, ABⁿC)")


def count_document(xi: dict, cost: Cost, vs: dict | None = None, vs_cost: Cost | None = None) -> dict:
    doc = {"architecture": dict(xi), **cost.as_dict()}
    if vs is not None and vs_cost is not None:
        doc["vs"] = {"architecture": dict(vs), **vs_cost.as_dict()}
        doc["ratios"] = ratios(cost, vs_cost)
    return doc
