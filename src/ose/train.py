"""The error surrogate ê: a short, bounded SGD run of one candidate, measured on B.

Each candidate trains from a fresh, seeded initialisation, or from T's weights sliced to its
shape, with SGD (or AdamW) under θ ∈ Θ (learning rate, momentum, batch size) for at most s
steps, optionally ending early once the smoothed loss stops moving (tolerance). After every
step the weights are clipped to [−c, c] (from scratch) or to [w₀ − c, w₀ + c] around the
inherited w₀: the FPTAS guarantee needs an L-smooth objective with bounded stochastic
gradients (the ABⁿC condition 2), and keeping the weights in a compact set is how the paper
obtains that for BERT.
ê is the error rate on the fixed held-out batches B (1 − accuracy over masked tokens for MLM,
over examples for classification) or, optionally, their cross-entropy.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import ExtractConfig, Theta
from .tasks.base import Task, TaskData


@dataclass
class TrainResult:
    error: float
    loss: float          # cross-entropy on B
    train_loss: float    # smoothed training loss at the end
    steps: int
    seconds: float


class CandidateFailed(RuntimeError):
    """Training broke down (non-finite loss, an overflowing update); the candidate is stored as failed."""


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, task_loss: torch.Tensor, cfg: ExtractConfig):
    """α · CE(student, y) + β · τ² · KL(softmax(teacher/τ) ‖ softmax(student/τ)) (Hinton's form)."""
    tau = cfg.kd_temperature
    kl = F.kl_div(F.log_softmax(student / tau, -1), F.log_softmax(teacher / tau, -1), log_target=True,
                  reduction="batchmean")
    return cfg.kd_alpha * task_loss + cfg.kd_beta * tau * tau * kl


def _autocast(cfg: ExtractConfig):
    """bf16 autocast when the (resolved) precision asks for it."""
    if cfg.precision != "bf16":
        return nullcontext()
    return torch.autocast("cuda" if cfg.device.startswith("cuda") else "cpu", torch.bfloat16)


def heldout_error(model, family, task: Task, data: TaskData, cfg: ExtractConfig, chunk: int = 64):
    """(error rate, cross-entropy) on B."""
    model.eval()
    wrong, ce, total = 0, 0.0, 0
    with torch.no_grad(), _autocast(cfg):
        for part in data.chunks(chunk):
            part = part.to(cfg.device)
            w, c, n = task.score(family.logits(model, part, task.name), part)
            wrong, ce, total = wrong + w, ce + c, total + n
    return wrong / total, ce / total


def _optimizer(params, theta: Theta):
    if theta.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=theta.lr)
    return torch.optim.SGD(params, lr=theta.lr, momentum=theta.momentum)


class Bound:
    """Weight clipping after every step, the compact set condition 2 of ABⁿC asks for.

    From scratch the set is [−c, c]. Around inherited weights w₀ it is [w₀ − c, w₀ + c]:
    clipping a pretrained network to [−1, 1] would wreck its LayerNorm gains and embeddings,
    while a box around where it starts bounds the run just as well.
    """

    def __init__(self, params: list, c: float | None, around_start: bool):
        self.params, self.c = params, c
        self.low = self.high = None
        if c and around_start:
            with torch.no_grad():
                self.low = [p.detach() - c for p in params]
                self.high = [p.detach() + c for p in params]

    @torch.no_grad()
    def apply(self) -> None:
        if not self.c:
            return
        if self.low is None:
            torch._foreach_clamp_min_(self.params, -self.c)
            torch._foreach_clamp_max_(self.params, self.c)
        else:
            torch._foreach_maximum_(self.params, self.low)
            torch._foreach_minimum_(self.params, self.high)


def train(model, family, task: Task, data: TaskData, theta: Theta, cfg: ExtractConfig, teacher=None,
          progress=None, around_start: bool = False) -> TrainResult:
    """Train ``model`` for at most s steps under θ; return ê on B.

    ``cfg`` is the study's configuration with device and precision resolved (see
    ``context.make_context``); the batch order is seeded by ``cfg.seed``. ``around_start``
    bounds the weights around where they start (inherited weights) rather than around 0.
    """
    start = time.perf_counter()
    model.to(cfg.device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(params, theta)
    batches = data.train_batches(theta.batch_size, torch.Generator().manual_seed(cfg.seed))
    bound = Bound(params, cfg.clip or None, around_start)
    ema, last_check, step = None, None, 0
    for step in range(1, cfg.steps + 1):
        batch = next(batches).to(cfg.device)
        with _autocast(cfg):
            out = family.logits(model, batch, task.name)
            loss = task.loss(out, batch)
            if teacher is not None:
                with torch.no_grad():
                    t_out = task.teacher_logits(teacher, batch)
                loss = distillation_loss(out.float(), t_out.float(), loss, cfg)
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
        bound.apply()
        value = loss.item()
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        if progress is not None:
            progress(step, ema)
        if cfg.tolerance is not None and step % cfg.tolerance_window == 0:
            if last_check is not None and abs(last_check - ema) < cfg.tolerance:
                break
            last_check = ema
    error, ce = heldout_error(model, family, task, data, cfg)
    if not math.isfinite(ce):
        raise CandidateFailed("non-finite held-out loss")
    return TrainResult(error=error if cfg.metric == "error" else ce, loss=ce, train_loss=ema, steps=step,
                       seconds=time.perf_counter() - start)
