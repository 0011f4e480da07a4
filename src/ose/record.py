"""The record of one evaluation: what the store keeps and results.json / results.csv show.

A record holds ξ (the family's parameters), θ, the closed-form counts of ξ, and what the
evaluation measured: ê (``error``), the held-out cross-entropy, W, the steps and seconds it
took, its status and, under ``--speed latency``, the latency W used. ``columns`` is the one
list of its fields, in order; a record's flat dict (``as_dict``) is the stored form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .config import Theta

COUNTS = ("params", "params_effective", "mults", "adds", "other", "ops")
THETA = ("lr", "momentum", "batch_size")
MEASURED = ("latency", "error", "loss", "train_loss", "train_loss_tail", "kl", "w", "steps", "seconds", "status", "message")


def columns(parameters: tuple[str, ...] | list[str]) -> list[str]:
    """Every field of a record of a family with these parameters, in table order."""
    return [*parameters, *THETA, *COUNTS, *MEASURED]


@dataclass
class Record:
    xi: dict[str, int]
    theta: Theta
    counts: dict[str, int]
    status: str = "ok"
    message: str = ""
    error: float | None = None       # ê on B
    loss: float | None = None        # cross-entropy on B
    train_loss: float | None = None  # smoothed training loss at the end
    train_loss_tail: float | None = None  # mean training loss over the last quarter of the steps
    kl: float | None = None          # KL(teacher ‖ candidate) on B per target, where there is a teacher
    w: float | None = None
    steps: int | None = None
    seconds: float = 0.0
    latency: float | None = None     # --speed latency: seconds per forward pass that W used
    extra: dict = field(default_factory=dict)

    @classmethod
    def planned(cls, space, xi: Mapping[str, int], theta: Theta) -> Record:
        """ξ, θ and the closed-form counts: the part known before training."""
        cost = space.cost(xi).as_dict()
        return cls(dict(xi), theta, {k: cost[k] for k in COUNTS})

    def failed(self, message: str, seconds: float = 0.0) -> Record:
        return Record(self.xi, self.theta, self.counts, status="failed", message=message, seconds=seconds)

    def as_dict(self) -> dict:
        """The flat form: ξ, θ, counts, then what was measured (unset values left out)."""
        out = {**self.xi, **self.theta.as_dict(), **self.counts}
        for name in MEASURED:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return {**out, **self.extra}
