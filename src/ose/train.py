"""The error surrogate ê: a short, bounded SGD run of one candidate, measured on B.

Each candidate trains from a fresh, seeded initialisation with SGD under θ ∈ Θ (learning
rate, momentum, batch size) for at most s steps, optionally ending early once the smoothed
loss stops moving (tolerance). After every step the weights are clipped to [−c, c]: the
FPTAS guarantee needs an L-smooth objective with bounded stochastic gradients (the ABⁿC
condition 2), and keeping the weights in a compact set is how the paper obtains that for BERT.
ê is the error rate on the fixed held-out batches B (1 − accuracy over masked tokens for MLM,
over examples for classification) or, optionally, their cross-entropy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import Theta
from .data import Batch, TaskData


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 100                  # s: the step budget of one candidate
    tolerance: float | None = None    # end early when the smoothed loss changes less than this
    clip: float | None = 1.0          # c: weights clipped to [−c, c] after each step; None disables
    metric: str = "error"             # ê: "error" (rate) or "loss" (cross-entropy) on B
    precision: str = "bf16"           # "bf16" autocast or "fp32"
    device: str = "cpu"
    window: int = 10                  # steps between tolerance checks
    kd_alpha: float = 0.1             # distillation: α · CE + β · τ² · KL
    kd_beta: float = 0.5
    kd_temperature: float = 2.0


@dataclass
class TrainResult:
    error: float
    loss: float          # cross-entropy on B
    train_loss: float    # smoothed training loss at the end
    steps: int
    seconds: float


class CandidateFailed(RuntimeError):
    """Training broke down (non-finite loss); the candidate is stored as failed."""


def logits(model, batch: Batch, task: str) -> torch.Tensor:
    """MLM: vocabulary logits at masked positions only (the projection is most of the cost)."""
    if task == "mlm":
        hidden = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        return model.cls(hidden[batch.masked])
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def teacher_logits(teacher, batch: Batch, task: str) -> torch.Tensor:
    out = teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return out[batch.masked] if task == "mlm" else out


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, cfg: TrainConfig):
    """α · CE(student, y) + β · τ² · KL(softmax(teacher/τ) ‖ softmax(student/τ)) (Hinton's form)."""
    tau = cfg.kd_temperature
    kl = F.kl_div(F.log_softmax(student / tau, -1), F.log_softmax(teacher / tau, -1), log_target=True,
                  reduction="batchmean")
    return cfg.kd_alpha * F.cross_entropy(student, targets) + cfg.kd_beta * tau * tau * kl


def _to(batch: Batch, device: str) -> Batch:
    if device == "cpu":
        return batch
    return Batch(*(t.to(device) if t is not None else None for t in
                   (batch.input_ids, batch.attention_mask, batch.labels, batch.masked)))


def evaluate(model, heldout: Batch, task: str, cfg: TrainConfig, chunk: int = 64) -> tuple[float, float]:
    """(error rate, cross-entropy) on B."""
    model.eval()
    wrong, total, ce = 0, 0, 0.0
    n = heldout.input_ids.shape[0]
    with torch.no_grad(), torch.autocast(_device_type(cfg.device), torch.bfloat16, enabled=cfg.precision == "bf16"):
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            masked = heldout.masked[rows] if heldout.masked is not None else None
            if masked is not None:
                first = int(heldout.masked[:start].sum())
                labels = heldout.labels[first: first + int(masked.sum())]
            else:
                labels = heldout.labels[rows]
            part = _to(Batch(heldout.input_ids[rows], heldout.attention_mask[rows], labels, masked), cfg.device)
            out = logits(model, part, task).float()
            ce += F.cross_entropy(out, part.labels, reduction="sum").item()
            wrong += (out.argmax(-1) != part.labels).sum().item()
            total += part.labels.numel()
    return wrong / total, ce / total


def _device_type(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def train(model, data: TaskData, theta: Theta, cfg: TrainConfig, seed: int, teacher=None, progress=None) -> TrainResult:
    """Train ``model`` for at most s steps under θ; return ê on B."""
    start = time.perf_counter()
    model.to(cfg.device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=theta.lr, momentum=theta.momentum)
    gen = torch.Generator().manual_seed(seed)
    batches = data.train_batches(theta.batch_size, gen)
    ema, last_check, step = None, None, 0
    autocast = torch.autocast(_device_type(cfg.device), torch.bfloat16, enabled=cfg.precision == "bf16")
    for step in range(1, cfg.steps + 1):
        batch = _to(next(batches), cfg.device)
        with autocast:
            out = logits(model, batch, data.task)
            if teacher is not None:
                with torch.no_grad():
                    t_out = teacher_logits(teacher, batch, data.task)
                loss = distillation_loss(out.float(), t_out.float(), batch.labels, cfg)
            else:
                loss = F.cross_entropy(out.float(), batch.labels)
        if not torch.isfinite(loss):
            raise CandidateFailed(f"non-finite loss ({loss.item()}) at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        try:
            opt.step()
        except RuntimeError as e:  # e.g. an lr too large for the weights' dtype
            if "overflow" not in str(e):
                raise
            raise CandidateFailed(f"the SGD update overflowed at step {step} ({e}); lr {theta.lr:g} is too large")
        if cfg.clip:
            with torch.no_grad():
                torch._foreach_clamp_min_(params, -cfg.clip)
                torch._foreach_clamp_max_(params, cfg.clip)
        value = loss.item()
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        if progress is not None:
            progress(step, ema)
        if cfg.tolerance is not None and step % cfg.window == 0:
            if last_check is not None and abs(last_check - ema) < cfg.tolerance:
                break
            last_check = ema
    error, ce = evaluate(model, data.heldout, data.task, cfg)
    if not math.isfinite(ce):
        raise CandidateFailed("non-finite held-out loss")
    return TrainResult(error=error if cfg.metric == "error" else ce, loss=ce, train_loss=ema, steps=step,
                       seconds=time.perf_counter() - start)
