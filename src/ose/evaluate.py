"""One evaluation of Algorithm 1, step 4: train candidate ξ under θ, measure ê on B, score W.

An evaluation depends only on (configuration, ξ, θ, seed): the initialisation and the
batch order are seeded the same way for every candidate, so any executor, in any order,
gets the same numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ._faults import evaluation_fault
from .config import ConfigError, ExtractConfig
from .costs import w_coefficient
from .data import DataConfig, TaskData, prepare
from .space import SearchSpace, arch_key
from .train import CandidateFailed, Theta, TrainConfig, train


@dataclass
class Context:
    """What every evaluation of one study shares: Ξ and T, the data, the teacher."""

    cfg: ExtractConfig
    space: SearchSpace
    data: TaskData
    tokenizer: object
    data_identity: dict
    train_cfg: TrainConfig
    teacher: object = None
    latency: dict | None = None   # --speed latency: measured seconds by arch key, and "T"


def make_context(cfg: ExtractConfig, space: SearchSpace) -> Context:
    device = cfg.resolved_device()
    s = space.settings
    data_cfg = DataConfig(path=cfg.data, text_field=cfg.text_field, label_field=cfg.label_field,
                          heldout_fraction=cfg.heldout_fraction, eval_batches=cfg.eval_batches,
                          tokenizer=cfg.tokenizer, max_examples=cfg.max_examples)
    # B is sized by Θ's largest batch size, not its first: Θ's order must not change the study.
    largest = max(t.batch_size for t in cfg.theta)
    data, tok, identity = prepare(data_cfg, cfg.task, s.vocab_size, s.seq_len, largest, cfg.seed)
    _check_batch_size(largest, data)
    train_cfg = TrainConfig(steps=cfg.steps, tolerance=cfg.tolerance, clip=cfg.clip or None, metric=cfg.metric,
                            precision=cfg.resolved_precision(device), device=device, kd_alpha=cfg.kd_alpha,
                            kd_beta=cfg.kd_beta, kd_temperature=cfg.kd_temperature)
    teacher = load_teacher(cfg.teacher, cfg.task, s.vocab_size, data.num_labels, device, tok) if cfg.teacher else None
    latency = latency_table(cfg, space) if cfg.speed == "latency" else None
    return Context(cfg, space, data, tok, identity, train_cfg, teacher, latency)


def _check_batch_size(batch_size: int, data: TaskData) -> None:
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


def load_teacher(path: str, task: str, vocab_size: int, num_labels: int, device: str, tokenizer):
    """A local Hugging Face checkpoint whose outputs match the student's (vocabulary or labels)
    and whose tokenizer is the study's ``tokenizer``: it reads the student's input ids."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForSequenceClassification

    auto = AutoModelForMaskedLM if task == "mlm" else AutoModelForSequenceClassification
    if not Path(path).is_dir():  # else HF takes it for a Hub name and reports a failed download
        raise ConfigError(f"teacher {path}: no such directory (a local Hugging Face checkpoint is needed)")
    # Everything is checked before the weights load: loading prints a progress bar and, for a
    # checkpoint of another head, a load report, which would bury a refusal's one line.
    config = _teacher_part(path, AutoConfig)
    if task == "mlm" and config.vocab_size != vocab_size:
        raise ConfigError(f"teacher {path}: vocabulary of {config.vocab_size} does not match the "
                          f"student's {vocab_size}; the teacher needs the same tokenizer")
    if task == "cls" and config.num_labels != num_labels:
        raise ConfigError(f"teacher {path}: {config.num_labels} labels, the data has {num_labels}")
    _check_teacher_tokenizer(Path(path), tokenizer.get_vocab())
    return _teacher_part(path, auto).to(device).eval()


def _teacher_part(path: str, auto):
    try:
        with _no_progress_bar():
            return auto.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConfigError(f"teacher {path}: cannot load ({str(e).splitlines()[0]})") from None


@contextlib.contextmanager
def _no_progress_bar():
    """transformers draws a "Loading weights" bar on stderr, which would turn a teacher's
    one-line error (a broken weights file) into several lines."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


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


def build_model(ctx: Context, xi: dict, seed: int):
    torch.manual_seed(seed)  # the same fresh initialisation stream for every candidate
    head = "mlm" if ctx.cfg.task == "mlm" else "classifier"
    model = ctx.space.family.build(xi, ctx.space.settings, head=head, num_labels=ctx.data.num_labels or None)
    return model


def base_record(space: SearchSpace, xi: dict, theta: Theta) -> dict:
    """ξ, θ and the closed-form counts: the part of a record known before training."""
    cost = space.cost(xi)
    return {**xi, **theta.as_dict(), **{k: v for k, v in cost.as_dict().items() if k != "parts"}}


def evaluate(ctx: Context, xi: dict, theta: Theta, progress=None) -> dict:
    """Train ξ under θ for at most s steps; the record stored for this evaluation.

    Whatever goes wrong inside one candidate (divergence, no memory, an exception) makes a
    failed record with the reason, on every executor alike; the search goes on.
    """
    cost = ctx.space.cost(xi)
    top = ctx.space.max_cost
    record = base_record(ctx.space, xi, theta)
    start = time.perf_counter()
    torch.set_num_threads(ctx.cfg.resolved_threads())
    try:
        evaluation_fault(arch_key(xi))
        model = build_model(ctx, xi, ctx.cfg.seed)
        result = train(model, ctx.data, theta, ctx.train_cfg, ctx.cfg.seed, ctx.teacher, progress)
    except CandidateFailed as e:
        return _failed(record, str(e), start)
    except (torch.OutOfMemoryError, MemoryError) as e:
        return _failed(record, f"out of memory: {_first_line(e)}", start)
    except Exception as e:  # noqa: BLE001  (one candidate's error must not end a long study)
        return _failed(record, f"{type(e).__name__}: {_first_line(e)}", start)
    if ctx.latency is None:
        w = w_coefficient(cost.params, cost.ops, result.error, top.params, top.ops)
    else:  # --speed latency: measured seconds stand in for the operation count
        record["latency"] = ctx.latency["by_arch"][arch_key(xi)]
        w = w_coefficient(cost.params, record["latency"], result.error, top.params, ctx.latency["T"], strict=False)
    return {**record, **dataclasses.asdict(result), "w": w, "status": "ok", "message": ""}


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [""])[0][:300]


def _failed(record: dict, message: str, start: float) -> dict:
    return {**record, "status": "failed", "message": message, "seconds": time.perf_counter() - start}
