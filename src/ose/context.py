"""What the search's evaluations share, prepared once by the driver: the context.

The study's inputs (``inputs.py``: Ξ and T, the family and the task, the encoded data and its
tokenizer, T's weights) and what only the search needs on top: the teacher its candidates
learn from, and the measured latencies under ``--speed latency``. Executors ship the context
to their workers, which never read the user's files. Evaluating one candidate is ``evaluate.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ._faults import fault
from .config import TEACHER_FROM, ExtractConfig
from .errors import ConfigError
from .families.weights import quiet_loading
from .inputs import StudyInputs, prepare_inputs
from .space import SearchSpace, arch_key


TEACHER_MEMO_BYTES = 256 << 20  # per process: MLM answers over a vocabulary outgrow it and are recomputed


@dataclass
class Context(StudyInputs):
    teacher: object = None
    latency: dict | None = None   # --speed latency: measured seconds by arch key, and "T"
    timings: dict | None = None   # the same table wherever it was measured: for W or for --max-latency


def make_context(cfg: ExtractConfig, space: SearchSpace, source=None, layout: str = "texts",
                 count_built_head: bool = True) -> Context:
    """The shared context; ``source`` (``pretrained.Source``) when extracting from a checkpoint.
    ``layout`` and ``count_built_head``: see ``inputs.prepare_inputs`` (a resumed study keeps its own)."""
    inputs = prepare_inputs(cfg, space, source, layout, count_built_head)
    fault("prepared")
    cfg, space = inputs.cfg, inputs.space
    timings = latency_table(cfg, space, inputs.base_config) if needs_latency(cfg) else None
    ctx = Context(**{f.name: getattr(inputs, f.name) for f in dataclasses.fields(StudyInputs)},
                  latency=timings if cfg.speed == "latency" else None, timings=timings)
    if cfg.teacher:
        from .train import TeacherMemo

        teacher = finetuned_t(ctx) if cfg.teacher == TEACHER_FROM else \
            load_teacher(cfg.teacher, ctx.task, space.settings.vocab_size, ctx.data, cfg.device, ctx.tokenizer)
        # every candidate draws the same batches and is measured on the same B: T answers each once
        ctx.teacher = TeacherMemo(teacher, limit_bytes=TEACHER_MEMO_BYTES)
    return ctx


def finetuned_t(ctx: Context):
    """``--teacher from``: T as given where it carries its own head for the task; else T with the
    task's head, fine-tuned for s steps under the first θ, once, in the driver. The teacher every
    candidate then learns from (and, in ``ose distil``, the pick)."""
    from .train import train

    model = ctx.build(dict(ctx.space.maximum_point))
    if not ctx.t_as_given:
        train(model, ctx.family, ctx.task, ctx.data, ctx.cfg.theta[0], ctx.cfg, around_start=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def needs_latency(cfg: ExtractConfig) -> bool:
    """Whether the study measures latency before training: W uses it, or a budget bounds it."""
    return cfg.speed == "latency" or cfg.max_latency is not None


def latency_table(cfg: ExtractConfig, space: SearchSpace, base_config: dict | None = None) -> dict:
    """Measured forward latency (batch ``latency_batch``) of every ξ and of T, by arch key:
    from ``latency_file``, else from the study's own latency.json, else measured now."""
    from . import latency

    stored = Path(cfg.out) / latency.LATENCY_FILE  # a resumed study reuses what it measured
    path = cfg.latency_file or (str(stored) if stored.is_file() else None)
    return timings(space, path, cfg.latency_batch, cfg.resolved_threads(), base_config, runtime=cfg.runtime)


def timings(space: SearchSpace, path: str | None, batch: int, threads: int, base_config: dict | None = None,
            progress: bool = False, runtime: str = "torch") -> dict:
    """``{"by_arch", "T", "doc"}``: the latency file at ``path``, or every ξ and T measured now at
    ``batch`` on ``threads`` threads; a one-line ConfigError where the file lacks one of them."""
    from . import latency

    if path:
        try:
            doc = latency.load(path)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if latency.runtime_of(doc) != runtime:
            raise ConfigError(f"latency file {path} was measured in {latency.runtime_of(doc)}, not {runtime}; measure "
                              f"with `ose latency --runtime {runtime}` or give --runtime {latency.runtime_of(doc)}")
    else:
        doc = latency.measure_space(space, batch_sizes=(batch,), threads=threads, progress=progress,
                                    config=base_config, runtime=runtime)
    table = {}
    for xi in [*space.architectures(), space.maximum_point]:
        try:
            table[arch_key(xi)] = latency.lookup(doc, xi, batch)
        except (KeyError, ValueError):
            raise ConfigError(f"latency file {path} has no batch-{batch} latency "
                              f"for {arch_key(xi)}; measure this space with `ose latency`") from None
    return {"by_arch": table, "T": table[arch_key(space.maximum_point)], "doc": doc}


def load_teacher(path: str, task, vocab_size: int, data, device: str, tokenizer):
    """A local Hugging Face checkpoint whose outputs fit the task's student (its ``check_teacher``)
    and whose tokenizer is the study's ``tokenizer``: it reads the student's input ids."""
    import transformers
    from transformers import AutoConfig

    if task.teacher_class is None:
        raise ConfigError(f"teacher {path}: task {task.name} trains a {task.head} head, which no "
                          f"transformers Auto class loads")
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
        with quiet_loading():
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
