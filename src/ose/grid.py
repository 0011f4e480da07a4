"""Ξ as columns: every architecture of a space scored, filtered and sorted at array speed.

A grid of 10⁶ architectures (a Llama-like T with D, K, A, H, I on fine steps) cannot afford one
Python object per architecture (tens of µs each: 44 s for the grid). ``table`` holds ξ and the
closed-form counts p(ξ), i(ξ) as numpy columns (the families' cost formulas take arrays as they
take numbers), evaluates the constraints on whole columns, and sorts Ξ into Algorithm 1's order
with one ``lexsort``. ``Candidates`` is that order as a lazy sequence: a strategy touches the rows
it trains (one per ε-interval), and only those become ``Candidate`` objects, costed exactly by
the per-architecture path.

The columns agree with the per-architecture path to the last integer: where a constraint cannot
be evaluated exactly in float64 (``constraints.holds``), Ξ is enumerated the exact way, row by
row (slow, with its own error messages); a family whose cost formulas do not take arrays is
costed row by row too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .constraints import Inexact, arch_key, counts_env, holds, names_of, on_counts
from .costs import Cost

# How Algorithm 1 orders Ξ before cutting it into ε-intervals (see docs/SEARCH.md).
SORTS = ("intermediate", "total")


@dataclass(frozen=True)
class Candidate:
    """One ξ ∈ Ξ with its closed-form cost."""

    xi: dict[str, int]
    cost: Cost

    @property
    def key(self) -> str:
        return arch_key(self.xi)


class Candidates(Sequence):
    """Ξ (or its part within the budgets) in a fixed order, as columns: ``xi`` (rows × parameters),
    ``params`` and ``ops`` (the whole network's), ``b_params`` and ``b_ops`` (the layers B's).
    Indexing gives ``Candidate`` objects; a slice gives a list of them."""

    def __init__(self, space, xi: np.ndarray, counts: dict[str, np.ndarray]):
        self.space, self.xi, self.counts = space, xi, counts
        self.names = tuple(space.family.parameters)

    def __len__(self) -> int:
        return len(self.xi)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        xi = dict(zip(self.names, map(int, self.xi[index])))
        return Candidate(xi, self.space.cost(xi))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def keep(self, mask: np.ndarray) -> Candidates:
        """The rows where ``mask`` holds, in this order."""
        return Candidates(self.space, self.xi[mask], {k: v[mask] for k, v in self.counts.items()})

    def __repr__(self) -> str:
        return f"Candidates({len(self)} architectures of {self.space.name})"


def row(columns: Mapping[str, np.ndarray], index: int) -> dict[str, int]:
    """One ξ of the columns, as a dict of ints."""
    return {k: int(v[index]) for k, v in columns.items()}


def grid_columns(space) -> dict[str, np.ndarray]:
    """Ξ as columns, in ``SearchSpace.architectures``'s order (``itertools.product``'s, the last
    parameter varying fastest). The product grows one parameter at a time and each constraint cuts
    it as soon as the parameters it names are there, so a constraint tying A to H cuts before D and
    I multiply the rows. Where a constraint cannot be trusted to float64 (``Inexact``), Ξ is
    enumerated the exact way instead (row by row, with its error messages)."""
    names = space.family.parameters
    columns: dict[str, np.ndarray] = {}
    pending = [c for c in space.constraints if not on_counts(c)]  # on p and i: ``cut_by_counts``
    try:
        for name in names:
            values = np.asarray(space.parameters[name], dtype=np.int64)
            rows = len(next(iter(columns.values()))) if columns else 1
            columns = {k: np.repeat(v, len(values)) for k, v in columns.items()}
            columns[name] = np.tile(values, rows)
            for c in [c for c in pending if names_of(c) <= set(columns)]:
                mask = holds(c, columns)
                columns = {k: v[mask] for k, v in columns.items()}
                pending.remove(c)
    except Inexact:
        archs = space.architectures()
        return {n: np.asarray([xi[n] for xi in archs], dtype=np.int64) for n in names}
    return columns


def costs(space, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """p, i and each part's (``a_params``, ``b_ops``, ...) of every row: the family's formulas on the
    columns at once, or row by row where they do not take arrays."""
    n = len(next(iter(columns.values())))

    def of(cost) -> dict:
        return {"params": cost.params, "ops": cost.ops,
                **{f"{part.lower()}_{k}": getattr(cost.parts[part], k) for part in "ABC" for k in ("params", "ops")}}

    try:
        out = of(space.family.cost(columns, space.settings))
        return {k: np.broadcast_to(np.asarray(v, dtype=np.int64), (n,)).copy() for k, v in out.items()}
    except (TypeError, ValueError):  # a formula that branches on a value: one architecture at a time
        rows = [of(space.cost(dict(zip(columns, map(int, r))))) for r in zip(*columns.values())]
        return {k: np.asarray([r[k] for r in rows], dtype=np.int64).reshape(n) for k in of(space.max_cost)}


def cut_by_counts(space, columns: dict[str, np.ndarray], counts: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """The rows that hold the constraints naming p, i, p_T or i_T (checked once ξ is costed), exactly:
    in float64 where that is exact, else row by row."""
    later = [c for c in space.constraints if on_counts(c)]
    if not later:
        return columns, counts
    env = {**columns, **counts_env(counts["params"], counts["ops"], space.max_cost)}
    try:
        mask = np.logical_and.reduce([holds(c, env) for c in later])
    except Inexact:
        mask = np.array([all(c(row(env, k)) for c in later) for k in range(len(counts["params"]))], dtype=bool)
    return {k: v[mask] for k, v in columns.items()}, {k: v[mask] for k, v in counts.items()}


def table(space, sort: str = "intermediate") -> Candidates:
    """Ξ in the order Algorithm 1 cuts into ε-intervals (``SearchSpace.candidates``'s order, the
    same ties), as columns."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    columns, counts = space.scored  # grid_columns and costs, once per space
    names = space.family.parameters
    if sort == "intermediate":  # B's p, B's i, p, i, then ξ's values: the intermediate key
        keys = [counts["b_params"], counts["b_ops"], counts["params"], counts["ops"]]
        if any(list(v) != sorted(v) for v in space.parameters.values()):
            keys += [columns[n] for n in names]  # else the rows are in ξ's order already, which lexsort keeps
    else:  # p, then i; a stable sort keeps the grid's order among ties
        keys = [counts["params"], counts["ops"]]
    order = np.lexsort(keys[::-1])  # lexsort's last key is the primary one; it is stable
    xi = np.stack([columns[n] for n in names], axis=1)[order] if len(order) else np.zeros((0, len(names)), np.int64)
    return Candidates(space, xi, {k: v[order] for k, v in counts.items()})
