"""What families share to slice a pretrained T: reading its tensors, averaging activations over
the real tokens of a calibration batch, and choosing the most important indices."""

from __future__ import annotations

import torch


def read_tensors(path: str) -> dict:
    """Every tensor of a checkpoint's weights file (safetensors, or a PyTorch .bin)."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def token_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real (unpadded) tokens of (N, L, ...) → (...)."""
    w = mask.reshape(*mask.shape, *([1] * (x.dim() - 2))).to(x.dtype)
    return (x * w).sum((0, 1)) / w.sum()


def top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores (ties: the lower index), in ascending order."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return torch.tensor(sorted(order[:k]), dtype=torch.long)


def block_influence(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 − cos(layer input, layer output), averaged over the real tokens: how much a layer changes."""
    cos = torch.nn.functional.cosine_similarity(x.float(), y.float(), dim=-1, eps=1e-6)
    return token_mean((1 - cos)[..., None], mask)[0]


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

