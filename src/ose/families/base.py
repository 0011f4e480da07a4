"""The family interface: what every architecture family answers, and nothing more.

A family has the ABⁿC shape f(x) = C(Bₙ(…B₁(A(x))…)): an input part A, n intermediate
layers B and an output part C. For an assignment ξ of its architectural parameters and its
fixed settings s it gives the closed-form surrogates (p(ξ) by part, every operation of one
forward pass for i(ξ)), and the Hugging Face model with one of the head kinds it builds
(``heads``). The contract with a task (``ose.tasks``): the task names the head kind it trains
and, in each batch, the positions whose outputs carry targets; the family runs its body,
keeps the outputs at those positions and projects only them (``logits``). Everything else about
a task (data, loss, metric, teacher) belongs to the task.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any, Mapping

from ..costs import Cost, Op

# Head kinds, with the transformers Auto class a checkpoint (a teacher, an export) of that head loads with.
AUTO_CLASSES = {"sequence-classification": "AutoModelForSequenceClassification",
                "masked-lm": "AutoModelForMaskedLM", "causal-lm": "AutoModelForCausalLM"}

# Keys of a checkpoint's config.json that say what the file is rather than what the network is;
# a candidate's config is T's without them, with ξ's counts replaced.
BOOKKEEPING = ("_name_or_path", "architectures", "transformers_version", "id2label", "label2id", "num_labels",
               "torch_dtype", "dtype", "auto_map", "model_type", "problem_type", "_commit_hash",
               "_attn_implementation", "_attn_implementation_autoset")


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


def heads_unbuildable(columns: Mapping[str, Any], parameters: tuple[str, ...]):
    """``check_heads`` on ξ columns: a parameter below 1, or H not a whole number of heads."""
    import numpy as np

    low = np.logical_or.reduce([np.asarray(columns[k]) < 1 for k in parameters])
    if low.any():  # the remainders below would divide by zero
        return low
    return np.asarray(columns["H"]) % np.asarray(columns["A"]) != 0


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


def candidate_config(config: dict, counts: Mapping[str, Any]) -> dict:
    """T's config.json with only ``counts`` replaced: every other switch (activation, norm ε,
    dropout, token ids) carries over exactly."""
    return {**{k: v for k, v in config.items() if k not in BOOKKEEPING}, **counts}


def head_of(config: dict, heads: Mapping[str, str]) -> str | None:
    """The head kind a checkpoint's ``architectures`` names (``BertForMaskedLM`` → masked-lm), or None."""
    suffixes = {kind: auto[len("AutoModel"):] for kind, auto in AUTO_CLASSES.items()}  # ForMaskedLM, ...
    names = config.get("architectures") or []
    return next((kind for kind in heads if kind in suffixes and any(str(n).endswith(suffixes[kind]) for n in names)),
                None)


def _shape(shape: tuple[int, ...]) -> str:
    return " × ".join(map(str, shape)) or "a scalar"


def layer_count(shapes: Mapping[str, tuple], stem: str, prefixes: tuple[str, ...]) -> int:
    """A checkpoint's layers: its highest layer index + 1 in tensor names ``{prefix}{stem}N.…``."""
    pattern = re.compile(f"(?:{'|'.join(map(re.escape, prefixes))}){re.escape(stem)}(\\d+)\\.")
    return max((int(m[1]) + 1 for name in shapes if (m := pattern.match(name))), default=0)


def shape_mismatch(shapes: Mapping[str, tuple], expected, prefixes: tuple[str, ...], file: str) -> str | None:
    """The first of ``expected``, (what config.json says, tensor name, dimension, its size), that the
    checkpoint's tensors (name → shape, each name under one of ``prefixes``) contradict, as one line."""
    for said, name, dim, size in expected:
        real = next((p + name for p in prefixes if p + name in shapes), None)
        if real is None:
            return f"config.json says {said}, {file} has no {name}"
        if len(shapes[real]) <= dim or shapes[real][dim] != size:
            return f"config.json says {said}, {file} has {real} of {_shape(shapes[real])}"
    return None


class Family(ABC):
    name: str
    parameters: tuple[str, ...]   # the architectural parameters ξ assigns, in order
    settings_type: type           # frozen dataclass of fixed settings with check(); text tasks read
                                  # its vocab_size and seq_len; ``head`` names the head C counted
    heads: dict[str, str]         # head kind it builds → the settings head that counts it; the first
                                  # is what its models are for (the default task trains it)
    checkpoint_body: tuple[str, ...] = ()  # name prefixes of a checkpoint's part A and B tensors
    checkpoint_head: dict[str, tuple[str, ...]] = {}  # settings head → name prefixes of its C tensors
    head_tensors: dict[str, tuple[str, ...]] = {}  # head kind → prefixes (as ``normalize`` names them) of the
                                                   # tensors a candidate inherits only if T's head is used

    @abstractmethod
    def check(self, xi: Mapping[str, int]) -> str | None:
        """Why ξ cannot be built, or None."""

    def unbuildable(self, columns: Mapping[str, Any]):
        """Where ``check`` refuses a row of ξ columns (numpy arrays), as a boolean array; None where
        the family has no array form of its check (then each row is checked on its own)."""
        return None

    def first_unbuildable(self, columns: Mapping[str, Any]) -> int | None:
        """The index of the first row of ξ columns that ``check`` refuses, or None."""
        import numpy as np

        mask = self.unbuildable(columns)
        if mask is not None:
            rows = np.flatnonzero(mask)
            return int(rows[0]) if len(rows) else None
        names = list(columns)
        for n, row in enumerate(zip(*columns.values())):
            if self.check(dict(zip(names, map(int, row)))):
                return n
        return None
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
    def hf_config(self, xi: Mapping[str, int], s: Any, num_labels: int | None = None, config: dict | None = None):
        """The ``transformers`` config of ξ (what ``best/config.json`` holds): with ``config`` (T's
        config.json), that config with only ξ's counts replaced."""

    @abstractmethod
    def build(self, xi: Mapping[str, int], s: Any, head: str | None = None, num_labels: int | None = None,
              attn: str | None = None, config: dict | None = None):
        """The model of ξ with the ``head`` kind; without one, the head the counts describe (``s.head``)."""

    @abstractmethod
    def hidden_states(self, model, batch):
        """The body's output, (N, L, H)."""

    @abstractmethod
    def project(self, model, hidden, head: str, attention_mask=None):
        """The head's outputs (rows, classes) from hidden states: rows at a task's target positions
        (n, H), or whole sequences (N, L, H) with their ``attention_mask`` when the head pools them."""

    def logits(self, model, batch, head: str):
        """The outputs a task's loss and ê are taken on, one row per target: only the positions the
        batch marks are projected (for a language-model head, the projection is most of the cost)."""
        hidden = self.hidden_states(model, batch)
        if batch.positions is None:
            return self.project(model, hidden, head, batch.attention_mask)
        return self.project(model, hidden[batch.positions], head)

    def counted_head(self, head: str) -> str:
        """The settings head that counts the head kind ``head`` (the C of p and i)."""
        return self.heads[head]

    # --- a pretrained T (``--from``); a family that cannot inherit weights leaves these ---------

    def from_hf_config(self, config: dict) -> tuple[dict[str, int], dict]:
        """ξ of a checkpoint's ``config.json``, and the settings it fixes (vocabulary, positions, its
        head...); ValueError for a config the family cannot rebuild exactly."""
        raise NotImplementedError(f"family {self.name} cannot read a checkpoint")

    def inheritable(self, xi: Mapping[str, int], t: Mapping[str, int]) -> str | None:
        """Why ξ cannot be cut from T = ``t``'s weights, beyond being no larger than T, or None."""
        return None

    # Where a checkpoint's tensors are named: the prefixes its models put before the body's names
    # (``bert.`` in a BERT with a head), and the stems of its layers' names (``encoder.layer.``).
    checkpoint_prefixes: tuple[str, ...] = ("",)
    layer_stem: str = ""

    def expected_shapes(self, config: dict, names) -> list[tuple[str, str, int, int]]:
        """What a checkpoint's ``config.json`` (one ``from_hf_config`` reads) makes of its tensors
        (``names``): (what it says, a tensor's name without prefix, dimension, its size), in order."""
        return []

    def check_weights(self, config: dict, shapes: Mapping[str, tuple], file: str) -> str | None:
        """Where ``config.json`` and the tensors of ``file`` (name → shape) disagree, as one line
        naming the field, or None. Checked before any training: otherwise transformers refuses T
        with a traceback mid-run, or T is counted with layers its weights do not hold."""
        if self.layer_stem:  # first: with layers missing or extra, every later check is beside the point
            said, layers = config[HF_COUNTS["D"]], layer_count(shapes, self.layer_stem, self.checkpoint_prefixes)
            if layers != said:
                return f"config.json says {HF_COUNTS['D']} {said}, {file} has {layers} layers"
        return shape_mismatch(shapes, self.expected_shapes(config, shapes), self.checkpoint_prefixes, file)

    def checkpoint_heads(self, tensor_names, config: dict) -> set[str]:
        """The head kinds whose weights a candidate inherits from a checkpoint (sliced with the body)."""
        return set()

    def without_head(self, state: dict, head: str) -> dict:
        """T's tensors without those of its ``head``: candidates then train a fresh one."""
        drop = self.head_tensors.get(head, ())
        return {k: v for k, v in state.items() if not (drop and k.startswith(drop))}

    def default_grid(self, t: Mapping[str, int]) -> tuple[dict[str, tuple[int, ...]], list[str]]:
        """A search grid below T = ``t``: candidate values per parameter, and constraints."""
        raise NotImplementedError(f"family {self.name} has no default grid")

    # A family that inherits weights names its module (``families/<name>_weights.py``: importance,
    # normalize, choose, cut, load_into) and the transformers Auto class a checkpoint loads with.
    weights_module: str | None = None
    pretrained_class: str = "AutoModel"

    def _weights(self):
        if self.weights_module is None:
            raise NotImplementedError(f"family {self.name} cannot inherit weights")
        import importlib

        return importlib.import_module(f"{__package__}.{self.weights_module}")

    def load_pretrained(self, path: str, weights: str):
        """(the checkpoint's model in eval mode, its tensors as ``inherited_model`` reads them)."""
        import transformers

        from .weights import quiet_loading, read_tensors

        module = self._weights()
        with quiet_loading():
            model = getattr(transformers, self.pretrained_class).from_pretrained(path, local_files_only=True)
        return model.eval(), module.normalize(read_tensors(weights))

    def importance(self, model, batch):
        """What each part of the pretrained ``model`` is worth on a calibration ``batch``."""
        return self._weights().importance(model, batch)

    def inherited_model(self, state: dict, importance, xi: Mapping[str, int], s: Any, head: str,
                        num_labels: int | None = None, config: dict | None = None):
        """ξ's model with the ``head`` kind and T's weights (``state``) cut to its shape by
        ``importance``; parts T lacks (a new task head) start fresh."""
        module = self._weights()
        model = self.build(xi, s, head=head, num_labels=num_labels, config=config)
        module.load_into(model, module.cut(state, module.choose(importance, dict(xi)), s))
        return model

    def __reduce__(self):  # by name: workers receive the space, and look the family up again
        from .registry import get_family

        return get_family, (self.name,)
