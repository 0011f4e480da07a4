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


def check_settings(s: Any, positive: tuple[str, ...], heads: tuple[str, ...]) -> str | None:
    """The checks every family's settings share: counts that must be positive, a known head, and
    a sequence length within the positions."""
    for name in positive:
        if getattr(s, name) < 1:
            return f"{name} must be positive, got {getattr(s, name)}"
    if s.head not in heads:
        return f"head must be one of {', '.join(heads)}, got {s.head!r}"
    if s.seq_len > s.max_positions:
        return f"seq_len {s.seq_len} exceeds max_positions {s.max_positions}"
    return None


def check_heads(xi: Mapping[str, int], parameters: tuple[str, ...]) -> str | None:
    """The checks every transformer family shares: positive parameters, H a whole number of heads."""
    for k in parameters:
        if xi[k] < 1:
            return f"{k} must be positive, got {xi[k]}"
    if xi["H"] % xi["A"]:
        return f"H={xi['H']} is not divisible by A={xi['A']}"
    return None


# ξ's counts as transformers' configs of both families name them.
HF_COUNTS = {"D": "num_hidden_layers", "A": "num_attention_heads", "H": "hidden_size", "I": "intermediate_size"}


def config_count(config: dict, key: str) -> int:
    """A count from a checkpoint's config.json; ValueError (one line for the user) if it is not one."""
    value = config.get(key)
    if type(value) is not int or value < 1:
        raise ValueError(f"{key} must be a positive whole number, got {value!r}")
    return value


class Family(ABC):
    name: str
    parameters: tuple[str, ...]   # the architectural parameters ξ assigns, in order
    settings_type: type           # frozen dataclass of fixed settings with check(); text tasks read
                                  # its vocab_size and seq_len
    tasks: tuple[str, ...]        # the tasks it can train for the error surrogate
    checkpoint_body: tuple[str, ...] = ()  # name prefixes of a checkpoint's part A and B tensors

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

    # --- a pretrained T (``--from``); a family that cannot inherit weights leaves these ---------

    def from_hf_config(self, config: dict) -> tuple[dict[str, int], dict]:
        """ξ of a checkpoint's ``config.json``, and the settings it fixes (vocabulary, positions...)."""
        raise NotImplementedError(f"family {self.name} cannot read a checkpoint")

    def inheritable(self, xi: Mapping[str, int], top: Mapping[str, int]) -> str | None:
        """Why ξ cannot be cut from T = ``top``'s weights, beyond being no larger than T, or None."""
        return None

    def has_lm_head(self, tensor_names, config: dict) -> bool:
        """Whether a checkpoint carries its language-model head (MLM or next-token)."""
        return False

    def default_grid(self, top: Mapping[str, int]) -> tuple[dict[str, tuple[int, ...]], list[str]]:
        """A search grid below T = ``top``: candidate values per parameter, and constraints."""
        raise NotImplementedError(f"family {self.name} has no default grid")

    # A family that inherits weights names its module (``families/<name>_weights.py``: importance,
    # normalize, sliced_state, load_into) and the transformers Auto class a checkpoint loads with.
    weights_module: str | None = None
    pretrained_class: str = "AutoModel"

    def _weights(self):
        if self.weights_module is None:
            raise NotImplementedError(f"family {self.name} cannot inherit weights")
        import importlib

        return importlib.import_module(f"{__package__}.{self.weights_module}")

    def load_pretrained(self, path: str, weights: str):
        """(the checkpoint's model in eval mode, its tensors as ``slice`` reads them)."""
        import transformers

        from ..pretrained import quiet_loading
        from .weights import read_tensors

        module = self._weights()
        with quiet_loading():
            model = getattr(transformers, self.pretrained_class).from_pretrained(path, local_files_only=True)
        return model.eval(), module.normalize(read_tensors(weights))

    def importance(self, model, batch):
        """What each part of the pretrained ``model`` is worth on a calibration ``batch``."""
        return self._weights().importance(model, batch)

    def slice(self, state: dict, importance, xi: Mapping[str, int], s: Any, task: str,
              num_labels: int | None = None):
        """ξ's model for ``task`` with T's weights (``state``) cut to its shape by ``importance``;
        parts T lacks (a new task head) start fresh."""
        module = self._weights()
        model = self.build(xi, s, task=task, num_labels=num_labels)
        module.load_into(model, module.sliced_state(state, importance, dict(xi), s))
        return model

    def __reduce__(self):  # by name: workers receive the space, and look the family up again
        from . import get_family

        return get_family, (self.name,)
