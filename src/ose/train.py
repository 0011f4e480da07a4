"""The one training loop (``fit``), and the error surrogate ê the search takes from it (``train``).

The search trains each candidate from a fresh, seeded initialisation, or from T's weights
sliced to its shape, with SGD (or AdamW) under θ ∈ Θ (learning rate, momentum, batch size) for
at most s steps, optionally ending early once the smoothed loss stops moving (tolerance). After
every step the weights are clipped to [−c, c] (from scratch) or to [w₀ − c, w₀ + c] around the
inherited w₀: the FPTAS guarantee needs an L-smooth objective with bounded stochastic gradients
(the ABⁿC condition 2), and keeping the weights in a compact set is how the paper obtains that
for BERT. ê is the error rate on the fixed held-out batches B (1 − accuracy over masked tokens
for MLM, over examples for classification) or, optionally, their cross-entropy. With ``--repeats r`` ê is the mean of r
such runs from successive seeds (``train_repeated``).

Final training (``ose distil``) runs the same loop without the weight box, distilling from T,
saving its state every few steps (``Checkpoint``) and stopping once accuracy on a validation
part stops improving (``EarlyStop``). Autocast, the non-finite check and the overflow check are
in the loop, so every run has them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from contextlib import nullcontext
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ._faults import fault
from .config import ExtractConfig, Theta
from .stats import proportion_interval
from .tasks.base import Batch, Task, TaskData


@dataclass
class TrainResult:
    error: float
    loss: float          # cross-entropy on B
    train_loss: float    # smoothed training loss at the end
    steps: int
    seconds: float
    on_b: dict | None = None  # ê's numerator on each of B's rows (``Measured.on_rows``)
    train_loss_tail: float | None = None  # mean training loss over the run's last quarter
    kl: float | None = None  # KL(teacher ‖ model) on B per target, where the study has a teacher


class CandidateFailed(RuntimeError):
    """Training broke down (non-finite loss, an overflowing update); the candidate is stored as failed."""


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, task_loss: torch.Tensor, cfg: ExtractConfig):
    """α · CE(student, y) + β · τ² · KL(softmax(teacher/τ) ‖ softmax(student/τ)) (Hinton's form)."""
    tau = cfg.kd_temperature
    kl = F.kl_div(F.log_softmax(student / tau, -1), F.log_softmax(teacher / tau, -1), log_target=True,
                  reduction="batchmean")
    return cfg.kd_alpha * task_loss + cfg.kd_beta * tau * tau * kl


class TeacherMemo(torch.nn.Module):
    """A teacher that answers each distinct batch once: final runs of several candidates draw the
    same batches (one seeded order), so T's forward pass, often the dearest part of a small
    student's step, is paid once for all of them. The teacher must be in eval mode (no dropout):
    a remembered answer is then the one it would give again. Answers are kept up to
    ``limit_bytes`` (MLM logits over a vocabulary are large); past it the teacher just answers."""

    def __init__(self, teacher, limit_bytes: int = 1 << 30):
        super().__init__()
        self.teacher, self.limit, self.kept, self.memo = teacher, limit_bytes, 0, {}

    def forward(self, input_ids, attention_mask=None):
        import hashlib
        from types import SimpleNamespace

        if self.teacher.training:
            raise RuntimeError("TeacherMemo needs a teacher in eval mode")
        digest = hashlib.sha1(input_ids.cpu().numpy().tobytes())
        if attention_mask is not None:
            digest.update(attention_mask.cpu().numpy().tobytes())
        key = (tuple(input_ids.shape), digest.digest())
        if key in self.memo:
            return SimpleNamespace(logits=self.memo[key])
        logits = self.teacher(input_ids=input_ids, attention_mask=attention_mask).logits
        size = logits.numel() * logits.element_size()
        if self.kept + size <= self.limit:
            self.memo[key] = logits.detach()
            self.kept += size
        return SimpleNamespace(logits=logits)


def _autocast(cfg: ExtractConfig):
    """bf16 autocast when the (resolved) precision asks for it."""
    if cfg.precision != "bf16":
        return nullcontext()
    return torch.autocast("cuda" if cfg.device.startswith("cuda") else "cpu", torch.bfloat16)


# --- measuring a model on a set of held-out rows -------------------------------------------

@dataclass
class Measured:
    """A model's answers on one evaluation set (B, the test part, a validation part)."""

    correct: int
    targets: int
    loss: float                  # mean cross-entropy per target
    correct_by_row: list[float]  # for the interval: targets of one row (a block's tokens) are not independent
    targets_by_row: list[int]
    loss_by_row: list[float] | None = None  # summed cross-entropy of each row's targets
    kl_by_row: list[float] | None = None    # summed KL(teacher ‖ model) of each row's targets

    def on_rows(self, metric: str) -> dict:
        """ê's numerator row by row (wrong targets, or summed cross-entropy), with the targets of each
        row where a row holds more than one: what a record keeps so that ê gets an interval and two
        candidates can be compared on the same resamples of B (``stats``)."""
        if metric == "error":
            values = _whole([t - c for c, t in zip(self.correct_by_row, self.targets_by_row)])
        else:
            values = [round(v, 5) for v in (self.kl_by_row if metric == "kl" else self.loss_by_row)]
        out = {"values": values}
        if any(t != 1 for t in self.targets_by_row):
            out["targets"] = list(self.targets_by_row)
        return out

    @property
    def error(self) -> float:
        return (self.targets - self.correct) / self.targets

    @property
    def accuracy(self) -> float:
        return self.correct / self.targets

    @property
    def kl(self) -> float | None:
        return None if self.kl_by_row is None else sum(self.kl_by_row) / self.targets

    @property
    def rows(self) -> int:
        return len(self.targets_by_row)

    def interval(self) -> tuple[float, float]:
        """The accuracy's 95% interval (``stats.proportion_interval``)."""
        return proportion_interval(self.correct_by_row, self.targets_by_row)


def measure(model, family, task: Task, rows: Batch, cfg: ExtractConfig, chunk: int = 64, teacher=None) -> Measured:
    """``model``'s answers on ``rows``, in chunks, in eval mode (dropout off, no random draws); with a
    ``teacher``, also how far they are from its answers: KL(softmax(teacher) ‖ softmax(model)) per
    target, at temperature 1 (a divergence, not the training loss's τ-scaled term)."""
    was_training = model.training
    model.eval()
    correct, ce, total, by_row, per_row, loss_by_row = 0, 0.0, 0, [], [], []
    kl_by_row = [] if teacher is not None else None
    with torch.no_grad(), _autocast(cfg):
        for part in rows.chunks(chunk):
            on = part.to(cfg.device)
            out = family.logits(model, on, task.head).float()
            ce += F.cross_entropy(out, on.labels, reduction="sum").item()  # the sum as ê has always summed it
            losses = F.cross_entropy(out, on.labels, reduction="none").detach().cpu().double()
            right = task.correct(out, on).cpu()
            correct, total = correct + int(right.sum()), total + right.numel()
            target_rows = part.target_rows()
            by_row += torch.bincount(target_rows, weights=right.double(), minlength=part.rows).tolist()
            loss_by_row += torch.bincount(target_rows, weights=losses, minlength=part.rows).tolist()
            per_row += part.targets_per_row().tolist()
            if teacher is not None:
                taught = F.log_softmax(task.teacher_logits(teacher, on).float(), -1)
                kl = (taught.exp() * (taught - F.log_softmax(out, -1))).sum(-1).detach().cpu().double()
                kl_by_row += torch.bincount(target_rows, weights=kl, minlength=part.rows).tolist()
    model.train(was_training)
    return Measured(correct, total, ce / total, by_row, per_row, loss_by_row, kl_by_row)


# --- what a run may add to the loop: a weight box, a stop, saved state -----------------------

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


class Tolerance:
    """The search's optional early end: the smoothed loss moved less than ``tolerance`` between
    two checks ``window`` steps apart."""

    def __init__(self, tolerance: float, window: int):
        self.tolerance, self.window, self.last = tolerance, window, None

    def after_step(self, step: int, ema: float, last: bool) -> bool:
        if step % self.window:
            return False
        if self.last is not None and abs(self.last - ema) < self.tolerance:
            return True
        self.last = ema
        return False

    def finish(self, model) -> None:
        return None

    def state_dict(self) -> dict:
        return {"last": self.last}

    def load_state_dict(self, state: dict) -> None:
        self.last = state["last"]


class EarlyStop:
    """Final training's stop: accuracy on a validation part, measured every ``every`` steps and at
    the last; once it has not improved for ``patience`` measurements the run ends, and the model
    gets back the weights of its best measurement."""

    def __init__(self, score, model, every: int, patience: int):
        self.score, self.model, self.every, self.patience = score, model, every, patience
        self.history: list[list] = []   # [step, validation accuracy]
        self.best, self.best_step, self.best_state, self.bad = None, 0, None, 0

    def after_step(self, step: int, ema: float, last: bool) -> bool:
        if step % self.every and not last:
            return False
        accuracy = self.score()
        self.history.append([step, accuracy])
        if self.best is None or accuracy > self.best:
            self.best, self.best_step, self.bad = accuracy, step, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad += 1
        return self.bad >= self.patience

    def finish(self, model) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        return {"history": self.history, "best": self.best, "best_step": self.best_step, "bad": self.bad,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.history, self.best, self.best_step = state["history"], state["best"], state["best_step"]
        self.bad, self.best_state = state["bad"], state["best_state"]


class Checkpoint:
    """A long run's state in one file, saved every ``every`` steps and replaced atomically: weights,
    optimiser, step, the random states (CPU, and CUDA where a GPU trains), the stop's state. It
    holds tensors and plain values only and loads with ``weights_only=True``. ``run`` tags what it
    is the state of; a file of another run is refused. A finished run keeps its final weights and
    the stop's record (no optimiser): it is reused, not trained again."""

    def __init__(self, path: Path, run: dict, every: int = 25):
        self.path, self.run, self.every = Path(path), run, every

    def load(self) -> dict | None:
        from .errors import ConfigError

        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  (a truncated or foreign file)
            raise ConfigError(f"{self.path}: not a saved training state ({str(e).splitlines()[0][:200]}); "
                              f"remove it to train again") from None
        if state.get("run") != self.run:
            raise ConfigError(f"{self.path} holds the state of another run ({differs(state.get('run'), self.run)})")
        return state

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({**state, "run": self.run}, tmp)
        os.replace(tmp, self.path)
        fault(f"save-{self.run.get('phase', 'run')}")


def differs(old: dict | None, new: dict) -> str:
    """``key: old → new`` for every key of ``new`` whose value ``old`` does not share."""
    old = old or {}
    keys = [k for k in new if old.get(k) != new[k]]
    return ", ".join(f"{k}: {old.get(k)!r} → {new[k]!r}" for k in keys) or "unknown"


def _random_state(device: str) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_random_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Fitted:
    steps: int           # steps trained (the last one, where a stop ended the run early)
    train_loss: float    # smoothed training loss at the end
    reused: bool = False  # the checkpoint held the finished run: nothing was trained
    tail: list[float] = field(default_factory=list)  # the raw losses of the last quarter of the steps

    @property
    def tail_mean(self) -> float | None:
        return sum(self.tail) / len(self.tail) if self.tail else None


# --- the loop --------------------------------------------------------------------------------

def fit(model, family, task: Task, data: TaskData, theta: Theta, cfg: ExtractConfig, steps: int, *,
        teacher=None, clip: float | None = None, around_start: bool = False, stop=None, progress=None,
        checkpoint: Checkpoint | None = None) -> Fitted:
    """Train ``model`` under θ for at most ``steps`` steps on ``data``'s training batches (their
    order seeded by ``cfg.seed``), distilling from ``teacher`` when given, clipping the weights to a
    box of ``clip`` (around where they start, with ``around_start``) after every step; ``stop``
    may end the run earlier (``Tolerance``, ``EarlyStop``); with a ``checkpoint`` the run continues
    from its last saved step and ends as an uninterrupted one would."""
    model.to(cfg.device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(params, theta)
    batches = data.train_batches(theta.batch_size, torch.Generator().manual_seed(cfg.seed))
    bound = Bound(params, clip, around_start)
    done, ema = 0, None
    tail = deque(maxlen=max(1, steps // 4))  # the sum-of-training-losses proxy (``--metric train-loss``)
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        if stop is not None:
            stop.load_state_dict(saved["stop"])
        tail.extend(saved.get("tail", []))
        if saved.get("finished"):
            return Fitted(saved["step"], saved["ema"], reused=True, tail=list(tail))
        opt.load_state_dict(saved["optimizer"])
        _restore_random_state(saved["random"])
        done, ema = saved["step"], saved["ema"]
        for _ in range(done):  # the batches an uninterrupted run drew before this step
            next(batches)
    step = done
    for step in range(done + 1, steps + 1):
        batch = next(batches).to(cfg.device)
        with _autocast(cfg):
            out = family.logits(model, batch, task.head)
            loss = task.loss(out, batch)
            if teacher is not None:
                with torch.no_grad():
                    taught = task.teacher_logits(teacher, batch)
                loss = distillation_loss(out.float(), taught.float(), loss, cfg)
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
        tail.append(value)
        halt = stop is not None and stop.after_step(step, ema, step == steps)
        if progress is not None:  # after the stop, so that a progress line shows its latest measurement
            progress(step, ema)
        if checkpoint is not None and not halt and step < steps and step % checkpoint.every == 0:
            checkpoint.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "ema": ema,
                             "tail": list(tail), "random": _random_state(cfg.device),
                             "stop": stop.state_dict() if stop is not None else None})
        if halt:
            break
    if stop is not None:
        stop.finish(model)
    if checkpoint is not None:
        checkpoint.save({"model": model.state_dict(), "step": step, "ema": ema, "finished": True, "tail": list(tail),
                         "stop": {**stop.state_dict(), "best_state": None} if stop is not None else None})
    return Fitted(step, ema, tail=list(tail))


def train(model, family, task: Task, data: TaskData, theta: Theta, cfg: ExtractConfig, teacher=None,
          progress=None, around_start: bool = False) -> TrainResult:
    """The search's bounded run: train ``model`` for at most s steps under θ; return ê on B.

    ``cfg`` is the study's configuration with device and precision resolved (see
    ``inputs.prepare_inputs``); the batch order is seeded by ``cfg.seed``. ``around_start``
    bounds the weights around where they start (inherited weights) rather than around 0.
    """
    start = time.perf_counter()
    cfg = cfg.with_defaults()  # s and the metric, where a configuration was made without the study's resolution
    stop = Tolerance(cfg.tolerance, cfg.tolerance_window) if cfg.tolerance is not None else None
    fitted = fit(model, family, task, data, theta, cfg, cfg.steps, teacher=teacher, clip=cfg.clip or None,
                 around_start=around_start, stop=stop, progress=progress)
    m = measure(model, family, task, data.heldout, cfg, teacher=teacher)
    if not math.isfinite(m.loss):
        raise CandidateFailed("non-finite held-out loss")
    if cfg.metric == "kl" and teacher is None:
        raise ValueError("metric kl needs a teacher")
    value = {"error": m.error, "loss": m.loss, "kl": m.kl, "train-loss": fitted.tail_mean}[cfg.metric]
    # train-loss is resampled over its steps (every candidate draws the same batches: paired by step)
    on_b = {"values": [round(v, 5) for v in fitted.tail]} if cfg.metric == "train-loss" else m.on_rows(cfg.metric)
    return TrainResult(error=value, loss=m.loss, train_loss=fitted.train_loss, steps=fitted.steps,
                       seconds=time.perf_counter() - start, on_b=on_b, train_loss_tail=fitted.tail_mean, kl=m.kl)


def train_repeated(build, family, task: Task, data: TaskData, theta: Theta, cfg: ExtractConfig, teacher=None,
                   progress=None, around_start: bool = False) -> TrainResult:
    """ê from r = ``cfg.repeats`` short runs of one candidate, the k-th seeded by seed + k: its
    initialisation (``build(seed)`` makes the model), dropout and batch order differ; B and the
    split stay the study's seed's. Two runs of s/2 steps cost what one of s does, and their mean
    is less noisy than one run's ê (issue 21's "two seeds at half the steps")."""
    runs, cfg = [], cfg.with_defaults()
    for k in range(cfg.repeats):
        run_cfg = dataclasses.replace(cfg, seed=cfg.seed + k)
        shown = progress if progress is None or k == 0 else _shifted(progress, k * cfg.steps)
        runs.append(train(build(run_cfg.seed), family, task, data, theta, run_cfg, teacher, shown, around_start))
    return runs[0] if len(runs) == 1 else average(runs)


def _whole(values: list[float]) -> list[float]:
    """Whole numbers as ints, so that a record's rows read (and store) as counts where they are."""
    return [int(v) if float(v).is_integer() else v for v in values]


def _shifted(progress, offset: int):
    return lambda step, loss: progress(offset + step, loss)


def average(runs: list[TrainResult]) -> TrainResult:
    """The runs' mean: every figure averaged, ê's rows averaged row by row (every run measures the
    same rows of B, and the k-th runs of all candidates draw the same batches, so a record's
    interval and the margins between candidates stay paired); steps and seconds add up."""
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    on_b = None
    if all(r.on_b is not None for r in runs):
        rows = [r.on_b["values"] for r in runs]
        if len({len(v) for v in rows}) != 1:  # an early-stopped train-loss tail: nothing to pair by step
            raise ValueError("repeated runs measured different numbers of rows; leave --tolerance out with --repeats")
        on_b = {**runs[0].on_b, "values": _whole([round(mean(v), 5) for v in zip(*rows)])}
    kls = [r.kl for r in runs]
    tails = [r.train_loss_tail for r in runs]
    return TrainResult(error=mean([r.error for r in runs]), loss=mean([r.loss for r in runs]),
                       train_loss=mean([r.train_loss for r in runs]), steps=sum(r.steps for r in runs),
                       seconds=sum(r.seconds for r in runs), on_b=on_b,
                       train_loss_tail=None if None in tails else mean(tails),
                       kl=None if None in kls else mean(kls))
