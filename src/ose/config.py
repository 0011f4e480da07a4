"""The extraction's configuration: one typed dataclass, read from TOML, overridden by flags.

Every option of ``ose extract`` lives here, with its help text, choices and range in the
field's metadata, from which the command's flags are made; a config file may hold any of
them (Θ as an array of ``[[theta]]`` tables). Unknown keys and wrong types are one-line
errors. The configuration round-trips through TOML (``to_toml``) and JSON (``as_dict``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .space import SORTS
from .strategies import REPRESENTATIVES

# Strategies whose number of candidates is fixed by Ξ and ε, so a budget would be silently ignored.
BUDGETLESS = {"fptas": "⌈|Ξ|/ε⌉", "exhaustive": "all |Ξ|"}
# Strategies that plan every candidate up front, so they are never asked in rounds (--ask-batch).
STATIC = ("fptas", "exhaustive", "random")


OPTIMIZERS = ("sgd", "adamw")
EVAL_BATCHES = 4
METRICS = ("error", "loss", "kl", "train-loss")  # what ê measures (``train.train``)
TEACHER_FROM = "from"  # --teacher from: T itself (as given with its own head for the task, else fine-tuned)


@dataclass(frozen=True)
class Theta:
    """θ ∈ Θ: one hyper-parameter set of the bounded training run.

    SGD is the paper's (condition 3 of ABⁿC). AdamW is there for inherited weights: a short
    fine-tune of a pretrained network with SGD barely moves a fresh head, so every candidate
    looks alike (docs/TRAINING.md); momentum is SGD's and AdamW ignores it.
    """

    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 32
    optimizer: str = "sgd"

    def __post_init__(self):
        # ``lr = 1`` in TOML and ``lr=1.0`` on the command line are one study: the same θ, the
        # same job keys, the same stored configuration. Bools and non-numbers are left for check().
        for name in ("lr", "momentum"):
            v = getattr(self, name)
            if type(v) is int:
                object.__setattr__(self, name, _as_float(v))
            elif type(v) is float:
                object.__setattr__(self, name, v + 0.0)  # -0.0 → 0.0, which job keys spell alike

    def check(self) -> str | None:
        for name in ("lr", "momentum"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                return f"theta {name} must be a number, got {v!r}"
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            return f"theta batch_size must be a positive integer, got {self.batch_size!r}"
        if self.lr <= 0 or not 0 <= self.momentum < 1:
            return f"theta needs lr > 0 and 0 <= momentum < 1, got lr={self.lr} momentum={self.momentum}"
        if self.optimizer not in OPTIMIZERS:
            return f"theta optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
        return None

    def as_dict(self) -> dict:
        """The stored form; SGD, the default, is left out so that studies from before stay the same."""
        out = {"lr": self.lr, "momentum": self.momentum, "batch_size": self.batch_size}
        return out if self.optimizer == "sgd" else {**out, "optimizer": self.optimizer}

    def key(self) -> str:
        """θ as job keys spell it."""
        extra = "" if self.optimizer == "sgd" else f",optimizer={self.optimizer}"
        return f"lr={self.lr!r},momentum={self.momentum!r},batch_size={self.batch_size}{extra}"


def _as_float(v: int) -> float:
    try:
        return float(v)
    except OverflowError:  # an integer beyond float range: check() refuses it as non-finite
        return math.inf


# With inherited weights: a short fine-tune with SGD barely moves a fresh head (every candidate
# then scores the majority share), AdamW separates them (docs/TRAINING.md); a larger B, since
# a classification B of 4 × 32 examples has about ±4 points of noise.
INHERIT_THETA = Theta(lr=5e-4, momentum=0.9, batch_size=32, optimizer="adamw")
INHERIT_EVAL_BATCHES = 16
# ê with inherited weights: the mean training loss of the run's last quarter ranks candidates as the
# final models rank closer than the error rate on B does (benchmarks/fidelity.py, docs/SEARCH.md).
# Each of those batches is seen for the first time when its loss is taken, so it is measured on
# examples the candidate has not yet trained on. From scratch nothing was measured: the paper's stays.
INHERIT_METRIC = "train-loss"
# ... and it ranks better after 50 steps than after 100 (the same benchmark), at half the cost.
INHERIT_STEPS, STEPS = 50, 100


def _opt(help: str, choices=None, check: str | None = None, flag: bool | str = True,
         metavar: str | None = None) -> dict:
    """A field's metadata: its help text, allowed values (a tuple, or a function giving them),
    a range check (positive, non-negative, fraction), and whether ``ose extract`` has a flag
    (True: ``--field-name``; a string: that flag's name)."""
    return {"help": help, "choices": choices, "check": check, "flag": flag, "metavar": metavar}


def _names(module: str, table: str):
    """The names in a registry, imported when asked (validating, building the parser)."""
    import importlib

    return lambda: getattr(importlib.import_module(f"ose.{module}"), table).names()


def option(default, help: str, **kw):
    return field(default=default, metadata=_opt(help, **kw))


@dataclass
class ExtractConfig:
    """Every option of an extraction, passed whole from the command line to the workers.

    The flags of ``ose extract`` are made from these fields (``cli.py``), validation reads the
    same metadata, and the whole object is the study's identity (``study.py``).
    """

    source: str | None = option(None, "a pretrained checkpoint to extract from: T, its weights and tokenizer (a "
                                      "directory, or all-MiniLM-L6-v2)", flag="from", metavar="MODEL")
    init: str = option("auto", "candidates start from T's weights sliced to their shape (inherit) or fresh "
                               "(scratch); auto: inherit with --from", choices=("auto", "inherit", "scratch"))
    space: str | None = option(None, "a preset or a TOML file: Ξ and T (default bert-tiny; with --from, a grid "
                                     "below T)")
    seq_len: int | None = option(None, "L: tokens per training sequence and for the counts (default: the space's)",
                                 check="positive")
    data: str | None = option(None, "text file or folder, JSONL, or a saved HF dataset (default: embedded tweets)")
    task: str | None = option(None, "what ê is measured on (default: the family's first, mlm for bert, clm for "
                                    "llama)", choices=_names("tasks", "TASKS"))
    epsilon: int = option(3, "ε: architectures per interval; 1 = exhaustive (default 3)", check="positive")
    steps: int | None = option(None, "s: training steps per candidate, under each θ's optimizer (default 100; 50 "
                                     "with inherited weights)", check="positive")
    repeats: int = option(1, "r: train each candidate r times, from seeds seed, seed+1, … (initialisation, dropout "
                             "and batch order; B stays the seed's), and take ê as their mean; --steps s/r costs "
                             "what one run of s does (default 1)", check="positive")
    out: str = option("runs/ose", "output directory (default runs/ose)")
    seed: int = option(0, "seed of the split, the masks, the initialisation and the batch order")
    theta: list[Theta] | None = field(default=None, metadata=_opt(
        "a hyper-parameter set θ; repeat for Θ (default lr=0.05,momentum=0.9,batch_size=32 (SGD); with "
        "inherited weights lr=0.0005,batch_size=32,optimizer=adamw)",
        metavar="lr=X,momentum=Y,batch_size=N[,optimizer=sgd|adamw]"))
    representative: str = option("first", "which member represents its ε-interval (ours; default first)",
                                 choices=REPRESENTATIVES)
    sort: str = option("intermediate", "order of Ξ: by its layers B (default, Algorithm 1's) or by the whole "
                                       "network", choices=SORTS)
    tolerance: float | None = option(None, "end a candidate early when its smoothed loss moves less", check="positive")
    tolerance_window: int = option(10, "steps between two tolerance checks (default 10)", check="positive")
    clip: float | None = option(1.0, "weight clipping bound c (0 disables; default 1.0)", check="non-negative")
    metric: str | None = option(None, "ê: error rate on B (error, the paper's; the default from scratch and for "
                                      "--objective cost), the mean training loss over the run's last quarter "
                                      "(train-loss, the default with inherited weights), cross-entropy on B (loss) "
                                      "or KL divergence from the teacher's answers on B (kl, needs --teacher)",
                                choices=METRICS)
    precision: str = option("auto", "auto: bf16 where the hardware has it, else fp32",
                            choices=("auto", "fp32", "bf16"))
    device: str = option("auto", "auto: cuda if available", choices=("auto", "cpu", "cuda"))
    threads: int | None = option(None, "torch threads per evaluation (default: usable cores)", check="positive")
    heldout_fraction: float = option(0.1, "share of the examples held out for B and the test part (default 0.1)",
                                     check="fraction")
    test_data: str | None = option(None, "your own test set, in --data's format: every final number is measured on "
                                         "it (default: held-out texts apart from B's)", metavar="FILE")
    eval_batches: int | None = option(None, "|B| in batches of Θ's largest batch size (default 4; 16 with "
                                            "inherited weights)", check="positive")
    tokenizer: str | None = option(None, "a local tokenizer directory (default: WordPiece trained on the data)")
    text_field: str = option("text", "JSONL / dataset field holding the text")
    label_field: str = option("label", "JSONL / dataset field holding the label (cls)")
    max_examples: int | None = option(None, "use at most N examples, spread over the source", check="positive")
    teacher: str | None = option(None, "distil from a local HF checkpoint (saved with the study's tokenizer), or "
                                       "'from': T of --from, fine-tuned on the task for s steps")
    kd_alpha: float = option(0.1, "distillation: weight α of the task loss", flag=False)
    kd_beta: float = option(0.5, "distillation: weight β of τ²·KL", flag=False)
    kd_temperature: float = option(2.0, "distillation: temperature τ", check="positive", flag=False)
    executor: str = option("local", "where evaluations run (default local)", choices=_names("executors", "EXECUTORS"))
    workers: int | None = option(None, "worker processes / Ray workers (default: usable cores)", check="positive")
    address: str | None = option(None, "join an existing Ray cluster at HOST:PORT (default: start a local Ray)")
    gpus_per_eval: float = option(0.0, "Ray: GPUs reserved by each evaluation", check="non-negative")
    retries: int = option(2, "re-runs of an evaluation whose worker died (default 2)", check="non-negative")
    retry_failed: bool = option(False, "on resume, run the study's failed evaluations again (the failed records "
                                       "are kept apart in the study, not lost)")
    strategy: str = option("fptas", "the search (default fptas, Algorithm 1); the others are baselines",
                           choices=_names("strategies", "STRATEGIES"))
    budget: int | None = option(None, "random/tpe/nsga2: candidates to train (default ⌈|Ξ|/ε⌉, the FPTAS's)",
                                check="positive")
    ask_batch: int = option(1, "tpe/nsga2: candidates asked per round, so that many workers train at once "
                               "(default 1; part of the study's identity)", check="positive")
    speed: str = option("ops", "i(ξ) in W: the closed-form operation count (default) or measured latency",
                        choices=("ops", "latency"))
    latency_file: str | None = option(None, "latency.json from `ose latency` (default: measure at the start)")
    latency_batch: int = option(1, "batch size whose latency W uses (default 1)", check="positive")
    runtime: str = option("torch", "where latency is measured (--speed latency, --max-latency): torch, PyTorch eager "
                                   "fp32 (default), or onnxruntime, each candidate's fp32 ONNX graph, the latency it "
                                   "will be served at (needs pip install -e '.[onnx]')",
                          choices=("torch", "onnxruntime"))
    objective: str = option("w", "what picks ξ*: w, the paper's W-coefficient (default); accuracy, the lowest ê of "
                                 "the candidates trained (with budgets: the most accurate that fits); or cost, the "
                                 "cheapest predicted to keep --keep F of T's accuracy (found by bisection)",
                            choices=("w", "accuracy", "cost"))
    keep: float | None = option(None, "with --objective cost: the share F of T's accuracy on B the pick must keep "
                                      "(0 < F <= 1)", metavar="F")
    max_params: str | float | None = option(None, "budget: candidates of at most this many parameters p, or this "
                                                  "share of T's (30%%); Ξ is cut before the search", metavar="N|P%")
    max_ops: str | float | None = option(None, "budget: candidates of at most this many operations i per forward "
                                               "pass, or this share of T's (5%%)", metavar="N|P%")
    max_latency: str | float | None = option(None, "budget: candidates whose forward pass at --latency-batch takes "
                                                   "at most MS milliseconds on this machine, or this share of T's "
                                                   "(10%%); measured before training", metavar="MS|P%")

    def validate(self) -> None:
        from .budgets import from_config

        _check_values(self)
        from_config(self)  # each budget a positive number or a share of T's
        for f in dataclasses.fields(self):
            problem = _check_field(f, getattr(self, f.name))
            if problem:
                raise ConfigError(problem)
        if self.budget is not None and self.strategy in BUDGETLESS:
            raise ConfigError(f"budget applies to random, tpe and nsga2; {self.strategy} trains "
                              f"{BUDGETLESS[self.strategy]} candidates")
        if self.address and self.executor != "ray":
            raise ConfigError("address is only for --executor ray")
        if self.latency_file and self.speed != "latency" and self.max_latency is None:
            # refused: neither W nor a budget would use the file the user named
            raise ConfigError("latency_file is only for --speed latency or --max-latency (W uses the operation count "
                              "otherwise); add one of them or leave latency_file out")
        if self.init == "inherit" and not self.source:
            raise ConfigError("init inherit needs a pretrained T: --from MODEL")
        if (self.keep is not None) != (self.objective == "cost"):
            raise ConfigError("--objective cost needs --keep F (the share of T's accuracy to keep), and --keep is "
                              "only for --objective cost")
        if self.keep is not None and (isinstance(self.keep, bool) or not 0 < self.keep <= 1):
            raise ConfigError(f"--keep must be a share of T's accuracy in (0, 1], got {self.keep}")
        if self.objective == "cost" and self.metric not in (None, "error"):
            raise ConfigError(f"--objective cost compares accuracies on B: it needs --metric error, not {self.metric}")
        if self.repeats > 1 and self.tolerance is not None and self.with_defaults().metric == "train-loss":
            raise ConfigError("--repeats averages the training loss step by step: an early stop (--tolerance) would "
                              "leave the runs different lengths; leave one of them out")
        if self.metric == "kl" and not self.teacher:
            raise ConfigError("metric kl measures the divergence from a teacher's answers: add --teacher "
                              "(from, or a checkpoint)")
        if self.teacher == TEACHER_FROM and not self.inherits:
            raise ConfigError("teacher 'from' is T of --from, fine-tuned: it needs --from MODEL with inherited weights")

    def command(self) -> str:
        """The ``ose extract`` command line of this configuration, as given: every flagged option that
        differs from its default (what resumes the study); options without a flag that differ are
        named after it, for a ``--config`` file."""
        import shlex

        words, unflagged = ["ose", "extract"], []
        for f in dataclasses.fields(self):
            value, flag = getattr(self, f.name), f.metadata.get("flag", True)
            if value == f.default or (f.name == "theta" and value is None):
                continue
            if not flag:
                unflagged.append(f"{f.name} = {value!r}")
                continue
            name = f"--{flag if isinstance(flag, str) else f.name.replace('_', '-')}"
            if f.name == "theta":
                for t in value:
                    words += [name, ",".join(f"{k}={v}" for k, v in t.as_dict().items())]
            elif value is True:
                words.append(name)
            else:
                words += [name, str(value)]
        line = " ".join(shlex.quote(w) for w in words)
        return line + (f" with {', '.join(unflagged)} in a --config file" if unflagged else "")

    def with_defaults(self) -> ExtractConfig:
        """This configuration with the options left unset (None) at their defaults, which differ when
        candidates inherit T's weights; an option given, even at a default's value, stays as given."""
        inherit = self.inherits
        defaults = {"theta": [INHERIT_THETA if inherit else Theta()],
                    "eval_batches": INHERIT_EVAL_BATCHES if inherit else EVAL_BATCHES,
                    "metric": INHERIT_METRIC if inherit and self.objective != "cost" else "error",
                    "steps": INHERIT_STEPS if inherit else STEPS}
        changes = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def inherits(self) -> bool:
        """Whether candidates start from T's weights (``init``, resolved)."""
        return self.init == "inherit" or (self.init == "auto" and bool(self.source))

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device cuda requested but no CUDA GPU is available")
        return self.device

    def resolved_precision(self, device: str) -> str:
        """bf16 autocast where the hardware runs it natively; on CPUs without bf16 units
        (AVX2 only) it is ~10× slower than fp32, so ``auto`` keeps fp32 there."""
        if self.precision != "auto":
            return self.precision
        if device == "cuda":
            return "bf16"
        import torch

        return "bf16" if torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX") else "fp32"

    def resolved_threads(self) -> int:
        return self.threads or len(os.sched_getaffinity(0))

    def resolved(self) -> ExtractConfig:
        """This configuration with device, precision and threads made concrete for this machine."""
        device = self.resolved_device()
        return dataclasses.replace(self, device=device, precision=self.resolved_precision(device),
                                   threads=self.resolved_threads())

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["theta"] = None if self.theta is None else [t.as_dict() for t in self.theta]
        return d

    def to_toml(self) -> str:
        """A config file that ``load_config`` reads back to this configuration (TOML has no
        null: options left unset are left out)."""
        lines = [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in self.as_dict().items()
                 if k != "theta" and v is not None]
        for t in self.theta or []:
            lines += ["", "[[theta]]", *(f"{k} = {json.dumps(v)}" for k, v in t.as_dict().items())]
        return "\n".join(lines) + "\n"


def given_options(cfg: ExtractConfig, named=()) -> set[str]:
    """The options the user gave: those ``named`` (a config file's keys, the flags given) and any
    other away from its default (an ExtractConfig built in Python)."""
    changed = {f.name for f in dataclasses.fields(cfg) if f.name != "theta" and getattr(cfg, f.name) != f.default}
    return {name.replace("-", "_") for name in named} | changed


def idle_options(cfg: ExtractConfig, given: set[str]) -> list[str]:
    """One warning line for each option given that has no effect in this configuration. They are
    warnings, not errors: the run is what it would be without them (``latency_file`` without
    ``speed latency`` is refused instead, in ``validate``: W would silently not use the file)."""
    idle = {
        "workers": (cfg.executor == "local", f"with executor {cfg.executor}, which runs one evaluation at a time "
                                             f"in this process (use --executor processes or ray)"),
        "gpus_per_eval": (cfg.executor != "ray", f"with executor {cfg.executor}: only Ray reserves GPUs per "
                                                 f"evaluation"),
        "tolerance_window": (cfg.tolerance is None, "without tolerance: every candidate trains its s steps"),
        "ask_batch": (cfg.strategy in STATIC, f"with strategy {cfg.strategy}, which plans every candidate up front "
                                              f"(it applies to tpe and nsga2)"),
        "latency_batch": (cfg.speed != "latency" and cfg.max_latency is None,
                          "without --speed latency or --max-latency: W uses the operation count"),
        "runtime": (cfg.speed != "latency" and cfg.max_latency is None,
                    "without --speed latency or --max-latency: nothing is timed"),
    }
    return [f"warning: {name} has no effect {why}" for name, (unused, why) in idle.items()
            if unused and name in given]


def choices_of(f: dataclasses.Field) -> tuple | None:
    c = f.metadata.get("choices")
    return tuple(c()) if callable(c) else c


def _check_field(f: dataclasses.Field, v) -> str | None:
    """A field's declared choices and range, from its metadata."""
    allowed = choices_of(f)
    if allowed is not None and v is not None and v not in allowed:
        return f"{f.name} must be one of {', '.join(allowed)}, got {v!r}"
    check = f.metadata.get("check")
    if v is None or check is None:
        return None
    if check == "positive" and not v > 0:
        return f"{f.name} must be a positive {'integer' if isinstance(v, int) else 'number'}, got {v}"
    if check == "non-negative" and v < 0:
        return f"{f.name} must be non-negative, got {v}"
    if check == "fraction" and not 0 < v < 1:
        return f"{f.name} must be between 0 and 1, got {v}"
    return None


def _check_values(cfg: ExtractConfig) -> None:
    """Each option has its declared type, and each θ ∈ Θ is well formed."""
    _check_types(cfg)
    if cfg.theta is None:  # left to with_defaults
        return
    if not cfg.theta:
        raise ConfigError("theta: Θ needs at least one hyper-parameter set")
    seen = set()
    for t in cfg.theta:
        problem = t.check()
        if problem:
            raise ConfigError(problem)
        if t in seen:
            raise ConfigError(f"theta {t.key()} is given twice; "
                              f"each θ in Θ must differ")
        seen.add(t)


def _check_types(cfg: ExtractConfig) -> None:
    hints = typing.get_type_hints(ExtractConfig)
    for f in dataclasses.fields(cfg):
        if f.name == "theta":
            continue
        v, hint = getattr(cfg, f.name), hints[f.name]
        allowed = typing.get_args(hint) or (hint,)
        ok = any((v is None and a is type(None)) or (a is float and type(v) in (int, float)) or
                 (a is not type(None) and type(v) is a) for a in allowed)
        if not ok:
            names = " or ".join("none" if a is type(None) else a.__name__ for a in allowed)
            raise ConfigError(f"{f.name} must be {names}, got {v!r}")


def _theta(raw) -> list[Theta]:
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError("theta must be a table or an array of tables ([[theta]])")
    known = {f.name for f in dataclasses.fields(Theta)}
    out = []
    for t in raw:
        unknown = set(t) - known
        if unknown:
            raise ConfigError(f"theta: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(known))})")
        out.append(Theta(**t))
    return out


def from_dict(raw: dict, base: ExtractConfig | None = None) -> ExtractConfig:
    """Overlay ``raw`` on ``base`` (default: the defaults); reject unknown keys."""
    cfg = dataclasses.replace(base) if base else ExtractConfig()
    names = {f.name for f in dataclasses.fields(ExtractConfig)}
    for key, value in raw.items():
        key = key.replace("-", "_")
        if key not in names:
            raise ConfigError(f"unknown option {key!r}")
        setattr(cfg, key, _theta(value) if key == "theta" and value is not None else value)
    return cfg


def load_config(path: str | Path | None, overrides: dict | None = None) -> ExtractConfig:
    """Defaults ← config file ← overrides (flags); validated."""
    return read_config(path, overrides)[0]


def read_config(path: str | Path | None, overrides: dict | None = None) -> tuple[ExtractConfig, set[str]]:
    """``load_config``, and the options given: the config file's keys and the overrides that are set
    (an option given in the file counts as given, even at its default's value)."""
    cfg, named = ExtractConfig(), set()
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML: {e}") from None
        try:
            cfg = from_dict(raw, cfg)
            _check_values(cfg)  # here, so that a wrong value names the file it came from
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"{p}: {e}") from None
        named |= set(raw)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    cfg = from_dict(given, cfg)
    cfg.validate()
    return cfg, given_options(cfg, named | set(given))
