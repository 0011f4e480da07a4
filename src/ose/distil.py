"""``ose distil RUN_DIR``: the pick of a study, trained into a model you can use.

The chosen architecture ξ* (T's weights sliced to it when the study inherited them) trains for
N steps with distillation from T fine-tuned on the task for the same N steps (the teacher, and
the yardstick the pick's accuracy is read against). Both are measured on held-out data and
for CPU latency side by side, and ``export`` writes the Hugging Face model directory. This is
the full training of the pick, not the bounded surrogate of the search: no weight box.

Each phase saves its state under ``OUT/.distil/`` every ``save_every`` steps (weights,
optimiser, step, random state), so a killed run continues from its last saved step and ends
with what an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ._faults import fault
from .config import ExtractConfig, Theta, from_dict
from .context import Context, make_context
from .errors import ConfigError, StoreError
from .evaluate import build_model
from .space import space_from_dict
from .store import STUDY_FILE, open_store
from .train import _optimizer, distillation_loss, heldout_error

EVAL_BATCHES = 64      # held-out batches for the final accuracies: more than the search's B
STATE_DIR = ".distil"


@dataclass
class DistilResult:
    out: Path
    architecture: dict
    accuracy: float
    teacher_accuracy: float | None
    latency: dict            # {"model": {batch: seconds}, "T": {...}}
    card: dict


def load_study(run_dir: Path) -> tuple[dict, dict]:
    """(the study's identity, its pick) or a one-line StoreError."""
    from .report.outputs import REFERENCE
    from .strategies.selection import best

    if not (run_dir / STUDY_FILE).is_file():
        raise StoreError(f"{run_dir}: no study here (no {STUDY_FILE}); run ose extract first")
    store = open_store(run_dir, readonly=True)
    try:
        meta, records = store.meta(), [r for r in store.records() if not r["key"].startswith(REFERENCE)]
    finally:
        store.close()
    pick = best(records) if meta else None
    if pick is None:
        raise StoreError(f"{run_dir}: the study has no finished evaluation to distil")
    return meta, pick


def study_context(meta: dict, steps: int) -> Context:
    """The study's own context (its data, tokenizer and T), with a larger held-out set."""
    from .pretrained import load_source

    settings = meta["settings"]
    cfg = from_dict({k: v for k, v in settings["config"].items()}, ExtractConfig())
    cfg = dataclasses.replace(cfg, eval_batches=max(cfg.eval_batches, EVAL_BATCHES), steps=steps)
    source = None
    if settings.get("source"):
        source = load_source(cfg.source)
        if source.identity()["weights_sha256"] != settings["source"]["weights_sha256"]:
            raise ConfigError(f"--from {cfg.source}: its weights changed since the study ran")
    space = space_from_dict(settings["space"], source=STUDY_FILE)
    return make_context(cfg, space, source)


class Checkpoints:
    """Each phase's state in one file, replaced atomically, tagged with what it is a run of."""

    def __init__(self, folder: Path, run: dict):
        self.folder, self.run = folder, run

    def load(self, phase: str) -> dict | None:
        path = self.folder / f"{phase}.pt"
        if not path.is_file():
            return None
        state = torch.load(path, weights_only=False)
        if state.get("run") != self.run:
            raise ConfigError(f"{self.folder} holds the state of another distillation "
                              f"({_differs(state.get('run'), self.run)}); use another --out, or the same --steps")
        return state

    def save(self, phase: str, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{phase}.pt.tmp"
        torch.save({**state, "run": self.run}, tmp)
        os.replace(tmp, self.folder / f"{phase}.pt")


def _differs(old: dict | None, new: dict) -> str:
    old = old or {}
    keys = [k for k in new if old.get(k) != new[k]]
    return ", ".join(f"{k}: {old.get(k)!r} → {new[k]!r}" for k in keys) or "unknown"


def train_phase(phase: str, model, ctx: Context, theta: Theta, steps: int, checkpoints: Checkpoints,
                teacher=None, save_every: int = 25, progress=None):
    """Train ``model`` for ``steps`` steps (distilling from ``teacher`` when given), resuming
    from the phase's last saved state."""
    cfg, task = ctx.cfg, ctx.task
    model.to(cfg.device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(params, theta)
    saved = checkpoints.load(phase)
    done = 0
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        done = saved["step"]
    else:
        torch.manual_seed(cfg.seed)  # dropout's stream, the same for every run of this phase
    batches = ctx.data.train_batches(theta.batch_size, torch.Generator().manual_seed(cfg.seed))
    for _ in range(done):  # the batches an uninterrupted run drew before this step
        next(batches)
    for step in range(done + 1, steps + 1):
        batch = next(batches).to(cfg.device)
        out = ctx.family.logits(model, batch, task.name)
        loss = task.loss(out, batch)
        if teacher is not None:
            with torch.no_grad():
                taught = task.teacher_logits(teacher, batch).float()
            loss = distillation_loss(out.float(), taught, loss, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(phase, step, loss.item())
        if step % save_every == 0 or step == steps:
            checkpoints.save(phase, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                     "rng": torch.get_rng_state()})
            fault("distil-save")
    return model.eval()


def accuracy(model, ctx: Context) -> float:
    error, _ = heldout_error(model, ctx.family, ctx.task, ctx.data, ctx.cfg)
    return 1.0 - error


def distil(run_dir: str | Path, steps: int = 100, out: str | Path | None = None, save_every: int = 25,
           log=print, progress: bool = True) -> DistilResult:
    """Distil the pick of the study in ``run_dir`` and export it (see the module docstring)."""
    from . import export, latency

    run_dir = Path(run_dir)
    if steps < 1:
        raise ConfigError(f"--steps must be a positive integer, got {steps}")
    meta, pick = load_study(run_dir)
    out = Path(out) if out else run_dir / "model"
    from .study import check_writable

    check_writable(out)
    ctx = study_context(meta, steps)
    torch.set_num_threads(ctx.cfg.threads)
    names = ctx.family.parameters
    xi = {k: pick[k] for k in names}
    theta = Theta(**{k: pick[k] for k in ("lr", "momentum", "batch_size")},
                  **({"optimizer": pick["optimizer"]} if "optimizer" in pick else {}))
    checkpoints = Checkpoints(out / STATE_DIR, {"study_created_at": meta["created_at"], "architecture": xi,
                                                "steps": steps, "theta": theta.as_dict()})
    bar = _bar(progress, steps, log)
    teacher, teacher_acc = None, None
    if ctx.inherited is not None:  # T is pretrained: fine-tuned, it teaches, and it is the yardstick
        log(f"distil: fine-tuning T = {dict(ctx.space.maximum_point)} for {steps} steps (the teacher)")
        teacher = train_phase("teacher", build_model(ctx, dict(ctx.space.maximum_point), ctx.cfg.seed), ctx, theta,
                              steps, checkpoints, save_every=save_every, progress=bar)
        teacher_acc = accuracy(teacher, ctx)
    log(f"distil: training ξ* = {xi} for {steps} steps" + (" from T (distillation)" if teacher else ""))
    model = train_phase("student", build_model(ctx, xi, ctx.cfg.seed), ctx, theta, steps, checkpoints, teacher,
                        save_every, bar)
    acc = accuracy(model, ctx)
    reference = teacher if teacher is not None else build_model(ctx, dict(ctx.space.maximum_point), ctx.cfg.seed)
    timings = latency.compare({"model": model, "T": reference}, ctx.space.settings.vocab_size,
                              ctx.space.settings.seq_len)
    card = export.card_facts(meta, pick, ctx, steps, theta, acc, teacher_acc, timings)
    export.export(model, ctx, out, card)
    return DistilResult(out, xi, acc, teacher_acc, timings, card)


def _bar(enabled: bool, steps: int, log):
    """Progress of the training phases: a line every tenth of a phase."""
    if not enabled:
        return None
    every = max(1, steps // 10)

    def report(phase: str, step: int, loss: float) -> None:
        if step % every == 0 or step == steps:
            log(f"  {phase}: step {step}/{steps}, loss {loss:.3f}")
    return report
