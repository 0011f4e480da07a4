"""What families share to slice a pretrained T: reading its tensors (one file or shards),
loading it quietly, averaging activations over the real tokens of a calibration batch, and
choosing the most important indices."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .files import shard_files

def read_tensors(path: str | Path) -> dict:
    """Every tensor of a checkpoint's weights (safetensors or a PyTorch .bin, one file or shards)."""
    out = {}
    for file in shard_files(path):
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            out.update(load_file(str(file)))
        else:
            out.update(torch.load(file, map_location="cpu", weights_only=True))
    return out


@contextlib.contextmanager
def quiet_loading():
    """transformers draws "Loading weights" and "Writing model shards" bars and load reports on stderr,
    which would turn a one-line error (a broken weights file) into several lines, and litter a log."""
    from transformers.utils import logging as hf_logging

    enabled, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    # Its load report ("classifier.* UNEXPECTED" for a body loaded from a classifier) speaks of
    # transformers' classes; what ose does with a checkpoint's head it says in its own line.
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if enabled:
            hf_logging.enable_progress_bar()


def token_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real (unpadded) tokens of (N, L, ...) → (...)."""
    w = mask.reshape(*mask.shape, *([1] * (x.dim() - 2))).to(x.dtype)
    return (x * w).sum((0, 1)) / w.sum()


@dataclass
class LayerSlice:
    """Which of T's units one layer of a candidate is cut from (its provenance)."""

    source: int                               # T's layer
    heads: list[int]                          # T's query heads kept, in the candidate's order
    neurons: list[int]                        # T's feed-forward neurons kept
    head_dims: list[list[int]] | None = None  # BERT: each kept head's dimensions within T's head
    groups: list[int] | None = None           # Llama: T's key/value groups kept, in the candidate's order


@dataclass
class Slice:
    """The provenance of a whole candidate: T's hidden channels it keeps, and each layer's units.
    Every kept unit keeps T's order; ``cut`` takes exactly these rows and columns of T's tensors."""

    channels: list[int]
    layers: list[LayerSlice]
    head_size: int                            # T's head size, H/A


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores (ties: the lower index), in ascending order."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return torch.tensor(sorted(order[:k]), dtype=torch.long)


def block_influence(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 − cos(layer input, layer output), averaged over the real tokens: how much a layer changes."""
    cos = torch.nn.functional.cosine_similarity(x.float(), y.float(), dim=-1, eps=1e-6)
    return token_mean((1 - cos)[..., None], mask)[0]


def rows_of(units, size: int) -> torch.Tensor:
    """The rows of whole units (heads, groups) of ``size`` rows each, in the given order."""
    return torch.cat([torch.arange(u * size, (u + 1) * size) for u in units])


def run_hooked(model, base, hooks: list, batch) -> None:
    """One eval-mode forward pass of ``base`` over ``batch`` with ``hooks`` in place; the hooks
    are removed and the model's training mode restored afterwards, whatever happens."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            base(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)


DEPTHS = (1 / 6, 1 / 3, 1 / 2, 2 / 3, 1)  # default grids below T: fractions of its layers,
WIDTHS = (1 / 3, 1 / 2, 2 / 3, 1)         # of its width (in whole heads or groups),
FFN = (1 / 8, 1 / 4, 1 / 2, 1)            # and of its feed-forward size


def fractions_of(value: int, fractions, step: int = 1) -> tuple[int, ...]:
    """``value`` × each fraction, rounded to a multiple of ``step`` (at least one step), distinct, sorted."""
    return tuple(sorted({max(step, round(value * f / step) * step) for f in fractions}))

