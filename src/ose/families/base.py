"""The family interface: what every architecture family answers, and nothing more.

A family has the ABⁿC shape f(x) = C(Bₙ(…B₁(A(x))…)): an input part A, n intermediate
layers B and an output part C. For an assignment ξ of its architectural parameters and its
fixed settings s it gives the closed-form surrogates (p(ξ) by part, every operation of one
forward pass for i(ξ)), the Hugging Face model with a task's head, and the logits a task's
loss and ê are computed from. Everything task-specific beyond the logits (data, loss, metric,
teacher) belongs to the task (``ose.tasks``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping

from ..costs import Cost, Op


class Family(ABC):
    name: str
    parameters: tuple[str, ...]   # the architectural parameters ξ assigns, in order
    settings_type: type           # frozen dataclass of fixed settings with check(); text tasks read
                                  # its vocab_size and seq_len
    tasks: tuple[str, ...]        # the tasks it can train for the error surrogate

    @abstractmethod
    def check(self, xi: Mapping[str, int]) -> str | None:
        """Why ξ cannot be built, or None."""

    @abstractmethod
    def params(self, xi: Mapping[str, int], s: Any) -> dict[str, int]:
        """Trainable parameters by part A, B, C; their sum equals the built model's ``numel``."""

    @abstractmethod
    def operations(self, xi: Mapping[str, int], s: Any) -> list[Op]:
        """Every operation of one forward pass, each tagged with its part."""

    def cost(self, xi: Mapping[str, int], s: Any) -> Cost:
        """p(ξ) and i(ξ), by part."""
        return Cost.from_ops(self.params(xi, s), self.operations(xi, s))

    @abstractmethod
    def hf_config(self, xi: Mapping[str, int], s: Any, num_labels: int | None = None):
        """The ``transformers`` config of ξ (what ``best/config.json`` holds)."""

    @abstractmethod
    def build(self, xi: Mapping[str, int], s: Any, task: str | None = None, num_labels: int | None = None,
              attn: str | None = None):
        """The model of ξ with ``task``'s head; without a task, the head the counts describe (``s.head``)."""

    @abstractmethod
    def logits(self, model, batch, task: str):
        """The outputs the task's loss and ê are taken on: (rows, classes)."""

    def slice(self, source, xi: Mapping[str, int], s: Any):
        """ξ's model with weights taken from ``source``, a larger model of this family."""
        raise NotImplementedError(f"family {self.name} cannot inherit weights")

    def __reduce__(self):  # by name: workers receive the space, and look the family up again
        from . import get_family

        return get_family, (self.name,)
