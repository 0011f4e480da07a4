"""The search-strategy interface: which candidates of Ξ to train, and in what order."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..space import Candidate


class Strategy(ABC):
    """Proposes candidates to evaluate; learns from each finished evaluation.

    ``ask`` returns up to ``n`` candidates not proposed before (fewer, or none, when the
    strategy is done); ``tell`` reports an evaluation's W. Static strategies ignore ``tell``.
    """

    name: str

    def __init__(self, candidates: list[Candidate]):
        self.candidates = candidates  # Ξ, sorted by p then i

    @abstractmethod
    def ask(self, n: int) -> list[Candidate]:
        ...

    def tell(self, candidate: Candidate, w: float) -> None:
        return None

    @property
    @abstractmethod
    def budget(self) -> int:
        """How many candidates this strategy will train (per θ)."""
