"""The search-strategy interface: which candidates of Ξ to train, and in what order."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..space import Candidate


class Strategy(ABC):
    """Proposes candidates of Ξ to train and learns from each evaluation.

    ``ask(n)`` returns up to ``n`` candidates never proposed before; an empty list means the
    strategy is done. ``tell`` reports a candidate's evaluations (one per θ ∈ Θ) after they
    finish; adaptive strategies use them to choose what to ask next, static ones ignore them.
    ``budget`` is the number of candidates the strategy trains (per θ). Every strategy is
    deterministic for its seed and the sequence of ``tell`` calls, so a resumed study asks
    exactly what the uninterrupted one asked.
    """

    name: str
    adaptive = False

    def __init__(self, candidates: list[Candidate], budget: int, seed: int = 0):
        if not 1 <= budget <= len(candidates):
            raise ValueError(f"budget must be between 1 and |Ξ| = {len(candidates)}, got {budget}")
        self.candidates = candidates  # Ξ, in the configuration's order (``sort``)
        self.budget = budget
        self.seed = seed

    @abstractmethod
    def ask(self, n: int) -> list[Candidate]:
        ...

    def tell(self, candidate: Candidate, records: list[dict]) -> None:
        return None


def best_w(records: list[dict]) -> float:
    """A candidate's score over Θ: its best W among finished evaluations (0 if none finished)."""
    ws = [float(r["w"]) for r in records if r.get("status") == "ok"]
    return max(ws) if ws else 0.0
