"""Budgets: the part of Ξ a user can afford, cut before the search sorts and splits it.

``--max-params`` and ``--max-ops`` bound a candidate's p(ξ) and i(ξ) (the whole network's, as W
counts them), each as an absolute number (``5e6``, ``5000000``) or a share of T's (``30%``);
``--max-latency`` its forward pass at ``--latency-batch`` on this machine, in milliseconds or as a
share of T's, from the latency table measured (or loaded) before training.
The FPTAS then runs on the feasible set F ⊆ Ξ: ⌈|F|/ε⌉ intervals, each trained once, and its
guarantee holds relative to the best candidate of F. Budgets are checked on the closed-form
counts, exactly, before any training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError

KINDS = {"params": ("max_params", "parameters"), "ops": ("max_ops", "operations per forward pass"),
         "latency": ("max_latency", "ms per forward pass")}


@dataclass(frozen=True)
class Budget:
    """One bound: ``value`` in the count's own unit, or a share of T's where ``share``."""

    kind: str          # "params" or "ops"
    value: float
    share: bool
    text: str          # as the user gave it

    def limit(self, t_value: float) -> float:
        return self.value * t_value if self.share else self.value

    def describe(self, t_value: float) -> str:
        limit = self.limit(t_value)
        number = f"{limit:.3g}" if self.kind == "latency" else f"{limit:,.0f}"
        shown = f"{self.text} of T's, {number}" if self.share else number
        return f"--{KINDS[self.kind][0].replace('_', '-')} {shown} {KINDS[self.kind][1]}"


def parse(kind: str, raw) -> Budget | None:
    """A budget from the command line or the config: a positive number, or a percentage of T's."""
    if raw is None:
        return None
    flag = "--" + KINDS[kind][0].replace("_", "-")
    text = str(raw).strip()
    share = text.endswith("%")
    try:
        value = float(text[:-1] if share else text)
    except ValueError:
        raise ConfigError(f"{flag} must be a number (5e6) or a share of T's (30%), got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{flag} must be positive, got {raw!r}")
    if share and value > 100:
        raise ConfigError(f"{flag} {text}: a share of T's is at most 100%")
    return Budget(kind, value / 100 if share else value, share, text)


def from_config(cfg) -> list[Budget]:
    """The budgets an extraction was given (``max_params``, ``max_ops``, ``max_latency``), checked."""
    return [b for b in (parse(kind, getattr(cfg, field)) for kind, (field, _) in KINDS.items()) if b]


def _values(c, timings: dict | None) -> dict:
    """A candidate's value of every kind: p and i, and its latency in ms where measured."""
    from .space import arch_key

    out = {"params": c.cost.params, "ops": c.cost.ops}
    if timings is not None:
        out["latency"] = 1000 * timings["by_arch"][arch_key(c.xi)]
    return out


def t_values(t_cost, timings: dict | None) -> dict:
    """T's value of every kind, what a share (``30%``) is of."""
    out = {"params": t_cost.params, "ops": t_cost.ops}
    if timings is not None:
        out["latency"] = 1000 * timings["T"]
    return out


def applicable(budgets: list[Budget], timings: dict | None) -> list[Budget]:
    """The budgets that can be checked now: a latency budget once latency is measured."""
    return [b for b in budgets if b.kind != "latency" or timings is not None]


def _columns(candidates, timings: dict | None) -> dict:
    """Every candidate's value of every kind, as arrays (``grid.Candidates`` holds p and i as columns)."""
    import numpy as np

    from .grid import Candidates

    if isinstance(candidates, Candidates):
        out = {"params": candidates.counts["params"], "ops": candidates.counts["ops"]}
        if timings is not None:
            out["latency"] = np.array([_values(c, timings)["latency"] for c in candidates])
        return out
    values = [_values(c, timings) for c in candidates]
    return {k: np.array([v[k] for v in values]) for k in (values[0] if values else {"params": 0, "ops": 0})}


def _within(columns: dict, budgets: list[Budget], top: dict):
    import numpy as np

    n = len(columns["params"])
    return np.logical_and.reduce([columns[b.kind] <= b.limit(top[b.kind]) for b in budgets], initial=True) \
        if n else np.zeros(0, dtype=bool)


def feasible(candidates, budgets: list[Budget], t_cost, timings: dict | None = None):
    """The candidates (``grid.Candidates``, or a list of ``space.Candidate``) within every budget, in
    their order; a one-line ConfigError naming the cheapest candidate when none is. ``timings``:
    the latency table (``context.latency_table``); without it a latency budget waits."""
    budgets = applicable(budgets, timings)
    if not budgets:
        return candidates
    top = t_values(t_cost, timings)
    mask = _within(_columns(candidates, timings), budgets, top)
    if not mask.any():
        raise ConfigError(nothing_fits(candidates, budgets, t_cost, timings))
    if hasattr(candidates, "keep"):
        return candidates.keep(mask)
    return [c for c, ok in zip(candidates, mask) if ok]


def nothing_fits(candidates: list, budgets: list[Budget], t_cost, timings: dict | None = None) -> str:
    """Which budget shuts every candidate out, with the cheapest candidate's cost under it."""
    top = t_values(t_cost, timings)
    columns = _columns(candidates, timings)
    for b in budgets:
        at = int(columns[b.kind].argmin())  # the first of the cheapest, as min() picks
        least = columns[b.kind][at].item()
        if least > b.limit(top[b.kind]):
            arch = ", ".join(f"{k}={v}" for k, v in candidates[at].xi.items())
            shown = f"{least:.3g} ms" if b.kind == "latency" else f"{least:,.0f}"
            return (f"no architecture of Ξ fits {b.describe(top[b.kind])}: the cheapest, ⟨{arch}⟩, has {shown} "
                    f"({least / top[b.kind]:.1%} of T's)")
    return "no architecture of Ξ fits the budgets together (each alone lets some through); loosen one of " + \
        ", ".join(b.describe(top[b.kind]) for b in budgets)


def summary(candidates, kept, budgets: list[Budget], t_cost, timings: dict | None = None) -> str:
    """``|F| of |Ξ| fit ...``: how many candidates the budgets keep, and the cheapest and largest of them."""
    import numpy as np

    def arch(c):
        return "⟨" + ", ".join(f"{k}={v}" for k, v in c.xi.items()) + f"⟩ (p {c.cost.params:,}, i {c.cost.ops:,})"

    budgets = applicable(budgets, timings)
    top = t_values(t_cost, timings)
    shown = "; ".join(b.describe(top[b.kind]) for b in budgets)
    columns = _columns(kept, None)
    order = np.lexsort((columns["ops"], columns["params"]))  # by p, then i; stable: the first of equals
    small = kept[int(order[0])]
    last = order[-1]  # max() keeps the first of equal maxima
    equal = np.flatnonzero((columns["params"] == columns["params"][last]) & (columns["ops"] == columns["ops"][last]))
    large = kept[int(equal[0])]
    return f"{len(kept)} of {len(candidates)} architectures fit {shown}: the cheapest {arch(small)}, the largest " \
           f"{arch(large)}"
