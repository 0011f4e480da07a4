"""The extraction's configuration: one typed dataclass, read from TOML, overridden by flags.

Every option of ``ose extract`` lives here; a config file may hold any of them (Θ as an
array of ``[[theta]]`` tables). Unknown keys and wrong types are one-line errors.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .space import SORTS
from .strategies import REPRESENTATIVES, STRATEGIES

TASKS = ("mlm", "cls")
EXECUTORS = ("local", "processes", "ray")
# Strategies whose number of candidates is fixed by Ξ and ε, so a budget would be silently ignored.
BUDGETLESS = {"fptas": "⌈|Ξ|/ε⌉", "exhaustive": "all |Ξ|"}


@dataclass(frozen=True)
class Theta:
    """θ ∈ Θ: one SGD hyper-parameter set."""

    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 32

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
        return None

    def as_dict(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "batch_size": self.batch_size}


def _as_float(v: int) -> float:
    try:
        return float(v)
    except OverflowError:  # an integer beyond float range: check() refuses it as non-finite
        return math.inf


@dataclass
class ExtractConfig:
    space: str = "bert-tiny"              # Ξ and T: a preset or a TOML file
    data: str | None = None               # None: the embedded corpus
    task: str = "mlm"                     # mlm | cls
    epsilon: int = 3                      # ε: interval size; 1 = exhaustive
    steps: int = 100                      # s: SGD steps per candidate
    out: str = "runs/ose"
    seed: int = 0
    theta: list[Theta] = field(default_factory=lambda: [Theta()])   # Θ
    representative: str = "first"         # which member represents its ε-interval (ours)
    sort: str = "intermediate"            # Ξ's order: by the layers B (the spec) or the whole network
    tolerance: float | None = None        # end a run early when the smoothed loss moves less
    clip: float | None = 1.0              # weight clipping to [−c, c]; 0 or None disables
    metric: str = "error"                 # ê on B: error (rate) or loss (cross-entropy)
    precision: str = "auto"               # auto | fp32 | bf16
    device: str = "auto"                  # auto | cpu | cuda
    threads: int | None = None            # torch threads per evaluation; None: all usable cores
    heldout_fraction: float = 0.1
    eval_batches: int = 4                 # |B| in batches of Θ's largest batch size (whatever Θ's order)
    tokenizer: str | None = None          # a local tokenizer directory; None: train WordPiece
    text_field: str = "text"
    label_field: str = "label"
    max_examples: int | None = None
    teacher: str | None = None            # a local HF checkpoint for knowledge distillation
    kd_alpha: float = 0.1
    kd_beta: float = 0.5
    kd_temperature: float = 2.0
    executor: str = "local"               # local | processes | ray
    workers: int | None = None            # processes / Ray workers; None: usable cores (cluster CPUs)
    address: str | None = None            # an existing Ray cluster, HOST:PORT; None: a local Ray
    gpus_per_eval: float = 0.0            # Ray: GPUs reserved by each evaluation
    retries: int = 2                      # re-runs of an evaluation whose worker died
    strategy: str = "fptas"               # fptas | exhaustive | random | tpe | nsga2
    budget: int | None = None             # random/tpe/nsga2: candidates to train; None: ⌈|Ξ|/ε⌉, the FPTAS's
    ask_batch: int = 1                    # adaptive strategies: candidates asked per round, before any is told
    speed: str = "ops"                    # i(ξ) in W: ops (closed-form count) or latency (measured)
    latency_file: str | None = None       # latency.json of `ose latency`; None: measure at the start
    latency_batch: int = 1                # the batch size whose latency W uses

    def validate(self) -> None:
        _check_values(self)
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.epsilon < 1:
            raise ConfigError(f"epsilon must be a positive integer, got {self.epsilon}")
        if self.steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {self.steps}")
        choices = {"representative": REPRESENTATIVES, "metric": ("error", "loss"),
                   "precision": ("auto", "fp32", "bf16"), "device": ("auto", "cpu", "cuda"),
                   "executor": EXECUTORS, "strategy": STRATEGIES,
                   "speed": ("ops", "latency"), "sort": SORTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not 0 < self.heldout_fraction < 1:
            raise ConfigError(f"heldout_fraction must be between 0 and 1, got {self.heldout_fraction}")
        if self.retries < 0 or self.gpus_per_eval < 0:
            raise ConfigError("retries and gpus_per_eval must be non-negative")
        if self.budget is not None and self.strategy in BUDGETLESS:
            raise ConfigError(f"budget applies to random, tpe and nsga2; {self.strategy} trains "
                              f"{BUDGETLESS[self.strategy]} candidates")
        if self.address and self.executor != "ray":
            raise ConfigError("address is only for --executor ray")
        for name in ("eval_batches", "threads", "max_examples", "workers", "budget", "latency_batch",
                     "ask_batch"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v}")
        if self.tolerance is not None and self.tolerance <= 0:
            raise ConfigError(f"tolerance must be positive, got {self.tolerance}")
        if self.clip is not None and self.clip < 0:
            raise ConfigError(f"clip must be non-negative, got {self.clip}")
        if self.kd_temperature <= 0:
            raise ConfigError(f"kd_temperature must be positive, got {self.kd_temperature}")

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

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["theta"] = [t.as_dict() for t in self.theta]
        return d


def _check_values(cfg: ExtractConfig) -> None:
    """Each option has its declared type, and each θ ∈ Θ is well formed."""
    _check_types(cfg)
    if not cfg.theta:
        raise ConfigError("theta: Θ needs at least one hyper-parameter set")
    seen = set()
    for t in cfg.theta:
        problem = t.check()
        if problem:
            raise ConfigError(problem)
        if t in seen:
            raise ConfigError(f"theta lr={t.lr!r},momentum={t.momentum!r},batch_size={t.batch_size} is given twice; "
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
        setattr(cfg, key, _theta(value) if key == "theta" else value)
    return cfg


def load_config(path: str | Path | None, overrides: dict | None = None) -> ExtractConfig:
    """Defaults ← config file ← overrides (flags); validated."""
    cfg = ExtractConfig()
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
    cfg = from_dict({k: v for k, v in (overrides or {}).items() if v is not None}, cfg)
    cfg.validate()
    return cfg
