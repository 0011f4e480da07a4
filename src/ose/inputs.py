"""A study's inputs: what every stage that trains a model of the study needs, prepared once.

The configuration (resolved for this machine), Ξ and T with the head C counted as the task
builds it, the task and its encoded data (training items, B, the test part), the tokenizer,
and, with a pretrained T, its config.json (a candidate is that config with ξ's counts replaced)
and its weights with what each of its parts is worth (what slicing needs). The search adds its
own extras on top (``context.py``); ``ose distil`` reopens a stored study's inputs with
``reopen``, from any directory, and checks that its data and T are the ones the study used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ExtractConfig, from_dict
from .costs import error_floor
from .data import EMBEDDED, prepare
from .errors import ConfigError, DataError
from .families.base import head_of
from .space import SearchSpace, space_from_dict
from .store import STUDY_FILE
from .tasks import get_task, tasks_of

CALIBRATION_ROWS = 64  # one batch of the training data, for the importance of T's parts


@dataclass
class Inherited:
    """T's weights, and the importance of its parts on a calibration batch: what slicing needs."""

    state: dict
    importance: object
    heads: set            # the head kinds whose weights candidates inherit (T's, where they fit the task)


@dataclass
class StudyInputs:
    cfg: ExtractConfig      # resolved: concrete device, precision and threads
    space: SearchSpace      # Ξ and T, C counted as the task's head (unless a study predates that)
    task: object            # ose.tasks.base.Task
    data: object            # ose.tasks.base.TaskData
    tokenizer: object
    data_identity: dict
    inherited: Inherited | None = None  # --init inherit: T's weights and what each part is worth
    base_config: dict | None = None     # --from: T's config.json, which candidates are built from

    @property
    def family(self):
        return self.space.family

    @property
    def t_as_given(self) -> bool:
        """Whether T is the checkpoint as given, with its own head for the task: it is then the
        yardstick and teacher unchanged (otherwise T's body gets the task's head, fine-tuned)."""
        return self.inherited is not None and self.task.head in self.inherited.heads

    @property
    def error_floor(self) -> float:
        """The least ê that W divides by: half of one of B's targets (``costs.error_floor``)."""
        return error_floor(self.data_identity["heldout_targets"])

    def build(self, xi: dict, seed: int | None = None):
        """ξ's model with the task's head: T's weights sliced to its shape (``--init inherit``), or fresh,
        initialised from ``seed`` (default: the study's; ``--repeats`` draws the others)."""
        torch.manual_seed(self.cfg.seed if seed is None else seed)  # one initialisation stream for every candidate
        num_labels = self.data.num_labels or None
        if self.inherited is None:
            return self.family.build(xi, self.space.settings, head=self.task.head, num_labels=num_labels,
                                     config=self.base_config)
        inherited = self.inherited
        return self.family.inherited_model(inherited.state, inherited.importance, xi, self.space.settings,
                                           self.task.head, num_labels, self.base_config)


def resolve_task(cfg: ExtractConfig, family, source=None) -> ExtractConfig:
    """The configuration with its task made concrete: the one whose head the checkpoint carries
    (a ``*ForSequenceClassification`` classifies), else the family's first, unless one was named."""
    names = tasks_of(family)
    if cfg.task is None:
        own = source and head_of(source.config, family.heads)
        named = [n for n in names if get_task(n).head == own]
        cfg = dataclasses.replace(cfg, task=named[0] if named else names[0])  # the first: what its models are for
    if cfg.task not in names:
        raise ConfigError(f"family {family.name} cannot train task {cfg.task} (its tasks: {', '.join(names)})")
    return cfg


def counted_as_built(space: SearchSpace, task, data) -> SearchSpace:
    """Ξ and T with C counted as the model the task trains: its head kind, and the data's labels."""
    fields = {f.name for f in dataclasses.fields(space.settings)}
    labels = {"num_labels": data.num_labels} if data.num_labels and "num_labels" in fields else {}
    return space.with_settings(head=space.family.counted_head(task.head), **labels)


def prepare_inputs(cfg: ExtractConfig, space: SearchSpace, source=None, layout: str = "texts",
                   count_built_head: bool = True) -> StudyInputs:
    """Read, split and encode the data, load T's weights where candidates inherit them; ``source``
    (``pretrained.Source``) when extracting from a checkpoint. ``count_built_head`` False keeps the
    space's counted head (a study made before C was counted as built resumes with its own counts)."""
    cfg = resolve_task(cfg.with_defaults(), space.family, source).resolved()
    if source is not None and cfg.tokenizer is None:  # T reads its own token ids
        cfg = dataclasses.replace(cfg, tokenizer=source.path)
    task = get_task(cfg.task)
    task.check_seq_len(space.settings.seq_len)
    head_config = source.config if source is not None and cfg.inherits and task.head in source.heads else None
    data, tok, identity = prepare(cfg, task, space.settings, layout, head_config)
    if source is not None and tok.get_vocab_size() != space.settings.vocab_size:
        raise ConfigError(f"tokenizer {cfg.tokenizer}: {tok.get_vocab_size():,} tokens, but T ({source.spec}) has a "
                          f"vocabulary of {space.settings.vocab_size:,}; use the checkpoint's own tokenizer")
    _check_batch_size(max(t.batch_size for t in cfg.theta), data)
    if count_built_head:
        space = counted_as_built(space, task, data)
    inherited = inherit(space, source, data, task, cfg.seed) if cfg.inherits else None
    return StudyInputs(cfg, space, task, data, tok, identity, inherited, source.config if source else None)


def inherit(space: SearchSpace, source, data, task, seed: int) -> Inherited:
    """Load T once, in the driver; measure its parts on one seeded batch of the training data. T's
    head for the task is inherited unless the data's labels do not fit it (``data.head_unused``)."""
    model, state = space.family.load_pretrained(source.path, source.weights)
    calibration = next(data.train_batches(CALIBRATION_ROWS, torch.Generator().manual_seed(seed)))
    heads = set(source.heads)
    if data.head_unused is not None:
        heads.discard(task.head)
        state = space.family.without_head(state, task.head)
    return Inherited(state, space.family.importance(model, calibration), heads)


def _check_batch_size(batch_size: int, data) -> None:
    """A batch larger than the training set would train on all of it at every step, slowly."""
    n = data.train_size()
    if batch_size > n:
        raise ConfigError(f"theta batch_size {batch_size} exceeds the {n:,} training {data.train_unit}; "
                          f"use a batch size ≤ {n:,}")


# --- a stored study's inputs, reopened ----------------------------------------------------

PATHS = ("data", "tokenizer", "source", "teacher", "latency_file", "test_data")  # options that name files


def resolved_paths(cfg: ExtractConfig, source=None) -> dict:
    """The study's input files as absolute paths: what a later stage reopens, from any directory."""
    def absolute(value):
        return str(Path(value).resolve()) if value and Path(value).exists() else value

    out = {name: absolute(getattr(cfg, name)) for name in PATHS if name not in ("source", "data")}
    out["data"] = None if cfg.data in (None, EMBEDDED) else absolute(cfg.data)
    out["source"] = str(Path(source.path).resolve()) if source is not None else None
    return out


def layout_of(meta: dict) -> str:
    """How a stored study cut its held-out part (``tasks.base.LAYOUTS``): studies that record no
    format predate the test part."""
    return "texts" if meta["settings"].get("format") else "legacy"


def stored_config(meta: dict, run_dir: Path) -> ExtractConfig:
    """A stored study's configuration, its files named by the absolute paths it recorded, and what
    belongs to the machine it ran on (device, precision, threads) left for this one to choose."""
    settings = meta["settings"]
    cfg = from_dict(settings["config"], ExtractConfig())
    paths = settings.get("inputs")
    if paths is None:  # a study made before it recorded absolute paths: as given, from the working directory
        paths = {name: getattr(cfg, name) for name in ("data", "tokenizer", "source")}
        _check_relative(run_dir, "data", paths["data"] if paths["data"] != EMBEDDED else None)
        _check_relative(run_dir, "tokenizer", paths["tokenizer"])
        if paths["source"]:
            from .pretrained import resolve

            try:  # a model name (all-MiniLM-L6-v2, a cached hub name) resolves from anywhere
                resolve(paths["source"])
            except ConfigError:
                _check_relative(run_dir, "from", paths["source"])
                raise
    return dataclasses.replace(cfg, data=paths.get("data") or cfg.data, tokenizer=paths.get("tokenizer"),
                               test_data=paths.get("test_data") or cfg.test_data,
                               source=paths.get("source") or cfg.source, out=str(run_dir), device="auto",
                               precision="auto", threads=None)


def _check_relative(run_dir: Path, flag: str, value: str | None) -> None:
    if value and not Path(value).exists() and not Path(value).is_absolute():
        raise ConfigError(f"{run_dir}: the study names --{flag} {value}, a path relative to the directory ose "
                          f"extract ran in (a study made before ose recorded absolute paths); run this from there")


def reopen(run_dir: Path, meta: dict) -> StudyInputs:
    """The inputs of the study stored in ``run_dir``: its data (the same examples, checked by their
    fingerprint), its tokenizer and its T (the same weights, checked by their digest), with C
    counted as the task builds it."""
    from .pretrained import load_source

    settings = meta["settings"]
    cfg = stored_config(meta, run_dir)
    source = None
    if settings.get("source"):
        source = load_source(cfg.source)
        if source.identity()["weights_sha256"] != settings["source"]["weights_sha256"]:
            raise ConfigError(f"--from {settings['source']['from']}: its weights changed since the study ran")
    space = space_from_dict(settings["space"], source=str(run_dir / STUDY_FILE))
    inputs = prepare_inputs(cfg, space, source, layout_of(meta))
    if inputs.data_identity["fingerprint"] != settings["data"]["fingerprint"]:
        raise DataError(f"{inputs.data_identity['source']}: the data changed since the study ran (its examples "
                        f"differ from the {settings['data']['examples']:,} the study used)")
    for key, what in (("t_head", "whether T's own head reads the labels"), ("labels", "the class names")):
        stored, now = settings["data"].get(key), inputs.data_identity.get(key)
        if stored is not None and stored != now:
            raise ConfigError(f"--from {cfg.source}: {what} changed since the study ran ({stored!r} → {now!r}); "
                              f"was its config.json edited?")
    test = settings["data"].get("test_data")
    if test and inputs.data_identity["test_data"]["fingerprint"] != test["fingerprint"]:
        raise DataError(f"{cfg.test_data}: the test data changed since the study ran")
    return inputs
