"""What every evaluation of one study shares, prepared once by the driver: the context.

Ξ and T, the family and the task, the encoded data and its tokenizer, the teacher, and the
measured latencies under ``--speed latency``. Executors ship the context to their workers,
which never read the user's files. Evaluating one candidate is ``evaluate.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from . import pretrained
from .config import TEACHER_FROM, ExtractConfig
from .data import prepare
from .errors import ConfigError
from .space import SearchSpace, arch_key
from .tasks import get_task


@dataclass
class Context:
    cfg: ExtractConfig      # resolved: concrete device, precision and threads
    space: SearchSpace
    task: object            # ose.tasks.base.Task
    data: object            # ose.tasks.base.TaskData
    tokenizer: object
    data_identity: dict
    teacher: object = None
    latency: dict | None = None   # --speed latency: measured seconds by arch key, and "T"
    inherited: Inherited | None = None  # --init inherit: T's weights and what each part is worth

    @property
    def family(self):
        return self.space.family


@dataclass
class Inherited:
    """T's weights, and the importance of its parts on a calibration batch: what slicing needs."""

    state: dict
    importance: object
    has_lm_head: bool


CALIBRATION_ROWS = 64  # one batch of the training data, for the importance of T's parts


def make_context(cfg: ExtractConfig, space: SearchSpace, source=None) -> Context:
    """The shared context; ``source`` (``pretrained.Source``) when extracting from a checkpoint."""
    if cfg.task is None:
        cfg = replace(cfg, task=space.family.tasks[0])
    if cfg.task not in space.family.tasks:
        raise ConfigError(f"family {space.family.name} cannot train task {cfg.task} "
                          f"(its tasks: {', '.join(space.family.tasks)})")
    cfg = cfg.resolved()
    if source is not None and cfg.tokenizer is None:  # T reads its own token ids
        cfg = replace(cfg, tokenizer=source.path)
    task = get_task(cfg.task)
    data, tok, identity = prepare(cfg, task, space.settings)
    if source is not None and tok.get_vocab_size() != space.settings.vocab_size:
        raise ConfigError(f"tokenizer {cfg.tokenizer}: {tok.get_vocab_size():,} tokens, but T ({source.spec}) has a "
                          f"vocabulary of {space.settings.vocab_size:,}; use the checkpoint's own tokenizer")
    _check_batch_size(max(t.batch_size for t in cfg.theta), data)
    latency = latency_table(cfg, space) if cfg.speed == "latency" else None
    inherited = inherit(space, source, data, cfg.seed) if cfg.inherits else None
    ctx = Context(cfg, space, task, data, tok, identity, None, latency, inherited)
    if cfg.teacher == TEACHER_FROM:
        ctx.teacher = finetuned_t(ctx)
    elif cfg.teacher:
        ctx.teacher = load_teacher(cfg.teacher, task, space.settings.vocab_size, data, cfg.device, tok)
    return ctx


def finetuned_t(ctx: Context):
    """``--teacher from``: T with the task's head, fine-tuned for s steps under the first θ, once,
    in the driver; the teacher every candidate then learns from."""
    from .evaluate import build_model
    from .train import train

    top = dict(ctx.space.maximum_point)
    model = build_model(ctx, top, ctx.cfg.seed)
    train(model, ctx.family, ctx.task, ctx.data, ctx.cfg.theta[0], ctx.cfg, around_start=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def inherit(space: SearchSpace, source, data, seed: int) -> Inherited:
    """Load T once, in the driver; measure its parts on one seeded batch of the training data."""
    import torch

    model, state = space.family.load_pretrained(source.path, source.weights)
    calibration = next(data.train_batches(CALIBRATION_ROWS, torch.Generator().manual_seed(seed)))
    return Inherited(state, space.family.importance(model, calibration), source.has_lm_head)


def _check_batch_size(batch_size: int, data) -> None:
    """A batch larger than the training set would train on all of it at every step, slowly."""
    n = data.train_size()
    if batch_size > n:
        raise ConfigError(f"theta batch_size {batch_size} exceeds the {n:,} training {data.train_unit}; "
                          f"use a batch size ≤ {n:,}")


def latency_table(cfg: ExtractConfig, space: SearchSpace) -> dict:
    """Measured forward latency (batch ``latency_batch``) of every ξ and of T, by arch key:
    from ``latency_file``, else from the study's own latency.json, else measured now."""
    from . import latency

    stored = Path(cfg.out) / latency.LATENCY_FILE  # a resumed study reuses what it measured
    path = cfg.latency_file or (str(stored) if stored.is_file() else None)
    if path:
        try:
            doc = latency.load(path)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    else:
        doc = latency.measure_space(space, batch_sizes=(cfg.latency_batch,), threads=cfg.resolved_threads(),
                                    progress=False)
    table = {}
    for xi in [*space.architectures(), space.maximum_point]:
        try:
            table[arch_key(xi)] = latency.lookup(doc, xi, cfg.latency_batch)
        except (KeyError, ValueError):
            raise ConfigError(f"latency file {path} has no batch-{cfg.latency_batch} latency "
                              f"for {arch_key(xi)}; measure this space with `ose latency`") from None
    return {"by_arch": table, "T": table[arch_key(space.maximum_point)], "doc": doc}


def load_teacher(path: str, task, vocab_size: int, data, device: str, tokenizer):
    """A local Hugging Face checkpoint whose outputs fit the task's student (its ``check_teacher``)
    and whose tokenizer is the study's ``tokenizer``: it reads the student's input ids."""
    import transformers
    from transformers import AutoConfig

    auto = getattr(transformers, task.teacher_class)
    if not Path(path).is_dir():  # else HF takes it for a Hub name and reports a failed download
        raise ConfigError(f"teacher {path}: no such directory (a local Hugging Face checkpoint is needed)")
    # Everything is checked before the weights load: loading prints a progress bar and, for a
    # checkpoint of another head, a load report, which would bury a refusal's one line.
    config = _teacher_part(path, AutoConfig)
    problem = task.check_teacher(config, data, vocab_size)
    if problem:
        raise ConfigError(f"teacher {path}: {problem}")
    _check_teacher_tokenizer(Path(path), tokenizer.get_vocab())
    return _teacher_part(path, auto).to(device).eval()


def _teacher_part(path: str, auto):
    try:
        with pretrained.quiet_loading():
            return auto.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConfigError(f"teacher {path}: cannot load ({str(e).splitlines()[0]})") from None


def _teacher_vocab(path: Path) -> dict[str, int]:
    """The token → id map of the tokenizer saved with a teacher: tokenizer.json, else vocab.txt."""
    from tokenizers import Tokenizer

    if (path / "tokenizer.json").is_file():
        try:
            return Tokenizer.from_file(str(path / "tokenizer.json")).get_vocab()
        except Exception as e:  # tokenizers raises plain Exceptions on malformed files
            raise ConfigError(f"teacher {path}: tokenizer.json is not a tokenizer "
                              f"({str(e).splitlines()[0]})") from None
    if (path / "vocab.txt").is_file():
        # One token a line, its id the line number; split on "\n" alone, as BERT's tokenizer reads it.
        lines = (path / "vocab.txt").read_text(encoding="utf-8", errors="replace").split("\n")
        return {token: i for i, token in enumerate(lines[:-1] if lines[-1] == "" else lines)}
    raise ConfigError(f"teacher {path}: no tokenizer.json or vocab.txt; save the tokenizer with the teacher "
                      f"(it reads the study's token ids, so it must be the study's tokenizer)")


def _check_teacher_tokenizer(path: Path, ours: dict[str, int]) -> None:
    theirs = _teacher_vocab(path)
    if theirs == ours:
        return
    differ = sorted((i, t) for t, i in ours.items() if theirs.get(t) != i)
    if differ:
        i, t = differ[0]
        there = f"{theirs[t]} in the teacher's" if t in theirs else "missing from the teacher's"
        example = (f"{len(differ):,} of the study's {len(ours):,} tokens differ, e.g. {t!r} is {there}, "
                   f"{i} in the study's")
    else:
        extra = sorted(set(theirs) - set(ours), key=theirs.get)
        example = f"the teacher's has tokens the study's lacks: {len(extra):,}, e.g. {extra[0]!r}"
    raise ConfigError(f"teacher {path}: its tokenizer is not the study's ({example}); the teacher needs the same "
                      f"tokenizer")
