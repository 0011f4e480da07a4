"""Measured inference latency: the wall-clock alternative to the operation count i(ξ).

i(ξ) is a hardware-independent count; a deployment sees seconds. This module times the
forward pass of every architecture of a space (and of the maximum point T) on this machine,
stores the numbers as ``latency.json``, and says how well the count ranks the architectures
the way the clock does (Spearman's ρ). The model is the one the counts describe: the space's
own head (``settings.head``) over inputs of ``settings.seq_len`` tokens, random weights.

The document ``measure_space`` returns (and ``save``/``load`` read and write)::

    {"settings": {"space": {...}, "batch_sizes": [1, 32], "repeats": 10, "warmup": 3, "threads": 1, "t_samples": 5,
                  "seq_len": 64, "statistic": "median", "torch": "...", "attn_implementation": "sdpa",
                  "machine": {"processor": "...", "platform": "...", "cpu_count": 2}},
     "maximum_point": {"architecture": {"D": 4, ...}, "ops": int, "params": int, "latency": {"1": s, "32": s},
                       "samples": {"1": [s, ...], "32": [s, ...]}, "samples_after": [0, 13, 27, 40, 54]},
     "architectures": [{"D": 1, ..., "ops": int, "params": int, "latency": {"1": s, "32": s}}, ...]}

Latencies are seconds per forward pass of one batch; the keys of ``latency`` are batch sizes
as strings (JSON keys). ``architectures`` follows Ξ's default order (``SearchSpace.candidates``).

T divides every ratio lat/T, so it is not timed once but ``t_samples`` times (default 5),
interleaved with Ξ: before the first architecture, after the last, and evenly between
(``samples_after`` counts the architectures timed before each). Every measurement of T is
made like one of ξ (same threads, warm-up and repeats); T's ``latency`` is the median of its
``samples``. Files written before this have no ``samples``; they load and read the same.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping, Sequence

import torch
from tqdm.auto import tqdm

from . import jsonout
from .report.table import text_table
from .space import SearchSpace, arch_key
from .stats import spearman  # noqa: F401  (ose.latency.spearman: where it lived before stats held it)

LATENCY_FILE = "latency.json"
BATCH_SIZES = (1, 32)
REPEATS = 10
WARMUP = 3
THREADS = 1  # one thread: the least noisy figure on a shared machine, and comparable across hosts
# T divides every ratio, so one slow or fast reading of T moves them all: two runs that measured
# T once read it 9.4 and 13.2 ms. T is timed this many times, spread over the run, and the median kept.
T_SAMPLES = 5


def check_options(batch_sizes: Sequence[int], repeats: int, warmup: int, threads: int,
                  t_samples: int = T_SAMPLES) -> str | None:
    """Why these measurement options are invalid, or None."""
    if not batch_sizes:
        return "give at least one batch size"
    for name, value in (("batch size", min(batch_sizes)), ("repeats", repeats), ("threads", threads),
                        ("T's samples", t_samples)):
        if value < 1:
            return f"{name} must be a positive integer, got {value}"
    if warmup < 0:
        return f"warmup must be zero or more, got {warmup}"
    return None


@contextmanager
def _torch_threads(threads: int):
    """Fix torch's intra-op threads for the block and restore the caller's value after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _build(space: SearchSpace, xi: Mapping[str, int], config: dict | None = None):
    # fork_rng: building draws random weights; the caller's random stream must not move.
    with torch.random.fork_rng(devices=[]):
        return space.family.build(dict(xi), space.settings, config=config).eval()


def _inputs(space: SearchSpace, batch_size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, space.settings.vocab_size, (batch_size, space.settings.seq_len), generator=gen)


def _time(model, x: torch.Tensor, repeats: int, warmup: int) -> float:
    """Median seconds of ``repeats`` forward passes after ``warmup`` untimed ones."""
    with torch.inference_mode():
        for _ in range(warmup):
            model(input_ids=x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(input_ids=x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(space: SearchSpace, xi: Mapping[str, int], batch_size: int, repeats: int = REPEATS,
            warmup: int = WARMUP, threads: int = THREADS) -> float:
    """Seconds for one forward pass of ξ's model over ``batch_size`` × ``seq_len`` tokens.

    The median of ``repeats`` timed passes after ``warmup`` untimed ones, in eval mode under
    ``torch.inference_mode``, with ``threads`` torch threads (the caller's setting is restored).
    Raises ValueError for invalid options.
    """
    problem = check_options([batch_size], repeats, warmup, threads)
    if problem:
        raise ValueError(problem)
    with _torch_threads(threads):
        return _time(_build(space, xi), _inputs(space, batch_size), repeats, warmup)


def _entry(space: SearchSpace, xi: Mapping[str, int], latency: dict) -> dict:
    cost = space.cost(xi)
    return {**xi, "ops": cost.ops, "params": cost.params, "latency": latency}


def _settings(space: SearchSpace, batch_sizes, repeats, warmup, threads, t_samples, attn: str) -> dict:
    return {"space": space.to_dict(), "batch_sizes": list(batch_sizes), "repeats": repeats, "warmup": warmup,
            "threads": threads, "t_samples": t_samples, "seq_len": space.settings.seq_len, "statistic": "median",
            "torch": torch.__version__,
            "attn_implementation": attn,
            "machine": {"processor": platform.processor() or platform.machine(), "platform": platform.platform(),
                        "cpu_count": os.cpu_count()}}


def t_schedule(n: int, t_samples: int) -> list[int]:
    """After how many of Ξ's ``n`` architectures each of T's measurements is taken: the first
    before any, the last after all, the others evenly between."""
    return [j * n // (t_samples - 1) for j in range(t_samples)] if t_samples > 1 else [0]


RUNTIMES = ("torch", "onnxruntime")


@contextmanager
def _runners(runtime: str, threads: int):
    """``serve(model)``: what is timed for a built model, the model itself (PyTorch eager, fp32) or
    its fp32 ONNX graph in an ONNX Runtime session of ``threads`` threads (``deploy``)."""
    if runtime == "torch":
        yield lambda model: model
        return
    import tempfile

    from . import runtime as onnx_runtime

    onnx_runtime.require()
    with tempfile.TemporaryDirectory() as tmp:
        made = iter(range(1 << 30))

        def serve(model):
            path = Path(tmp) / f"{next(made)}.onnx"
            onnx_runtime.export_graph(model, path)
            return onnx_runtime.Graph(path, threads)
        yield serve


def _time_each(model, space: SearchSpace, batch_sizes, repeats: int, warmup: int, bar) -> dict[str, float]:
    out = {}
    for b in batch_sizes:
        out[str(b)] = _time(model, _inputs(space, b), repeats, warmup)
        bar.update()
    return out


def measure_space(space: SearchSpace, batch_sizes: Sequence[int] = BATCH_SIZES, repeats: int = REPEATS,
                  warmup: int = WARMUP, threads: int = THREADS, progress: bool = True,
                  t_samples: int = T_SAMPLES, config: dict | None = None, runtime: str = "torch") -> dict:
    """Latency of T and of every ξ ∈ Ξ at each batch size: the document described in the module doc.

    Each model is built once and timed at every batch size (see ``measure``). T is timed
    ``t_samples`` times, interleaved with Ξ (see ``t_schedule``), each time like any ξ; its
    latency is the median of those measurements. Raises ValueError for invalid options.
    ``progress`` shows a tqdm bar on stderr. ``config``: T's config.json, which models are built
    from (with ξ's counts replaced) when the space is below a pretrained checkpoint. ``runtime``:
    ``torch`` times PyTorch eager; ``onnxruntime`` exports each model's fp32 graph and times it in
    ONNX Runtime (the latency it will be served at; seconds more per architecture for the export).
    """
    problem = check_options(batch_sizes, repeats, warmup, threads, t_samples)
    if problem:
        raise ValueError(problem)
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    cands = [c.xi for c in space.candidates()]
    after = t_schedule(len(cands), t_samples)
    bar = tqdm(total=(len(cands) + t_samples) * len(batch_sizes), desc="latency", unit="timing",
               disable=not progress)
    entries, samples = [], {str(b): [] for b in batch_sizes}

    def timings(model):
        return _time_each(model, space, batch_sizes, repeats, warmup, bar)

    with _torch_threads(threads), bar, _runners(runtime, threads) as serve:
        built = _build(space, space.maximum_point, config)
        top = serve(built)  # kept: T is timed again and again
        # The first timings in a process can run slow (one-time kernel and allocator set-up): discard a round.
        _time(top, _inputs(space, max(batch_sizes)), 1, warmup)
        for k in range(len(cands) + 1):
            # T at intervals, not once: a machine whose speed drifts during the run moves T's
            # readings with Ξ's, and their median with them.
            for _ in range(after.count(k)):
                for b, seconds in timings(top).items():
                    samples[b].append(seconds)
            if k < len(cands):
                entries.append(_entry(space, cands[k], timings(serve(_build(space, cands[k], config)))))
    attn = built.config._attn_implementation  # sdpa or eager: what the timings ran
    settings = _settings(space, batch_sizes, repeats, warmup, threads, t_samples, attn)
    if runtime != "torch":
        import onnxruntime

        settings.update(runtime=runtime, onnxruntime=onnxruntime.__version__)
    return {"settings": settings,
            "maximum_point": _maximum_point(space, samples, after), "architectures": entries}


def _maximum_point(space: SearchSpace, samples: dict[str, list[float]], after: list[int]) -> dict:
    entry = _entry(space, space.maximum_point, {b: statistics.median(v) for b, v in samples.items()})
    return {"architecture": {k: entry.pop(k) for k in space.family.parameters}, **entry,
            "samples": samples, "samples_after": after}


# --- the file ------------------------------------------------------------------------------

def _file(path: str | Path) -> Path:
    path = Path(path)
    return path / LATENCY_FILE if path.is_dir() else path


def save(path: str | Path, doc: dict) -> Path:
    """Write ``doc`` as JSON to ``path`` (a directory means DIR/latency.json), atomically.

    Parent directories are created. Returns the file written.
    """
    path = _file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(jsonout.dumps(doc, indent=2))
    os.replace(tmp, path)  # a reader never sees a half-written file
    return path


def load(path: str | Path) -> dict:
    """Read a latency document (``path``: the file, or a directory holding latency.json).

    A missing, unreadable or malformed file raises ValueError with a one-line message.
    """
    path = _file(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read the latency file ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a latency file (invalid JSON: {e})") from None
    keys = ("settings", "maximum_point", "architectures")
    if not isinstance(doc, dict) or any(k not in doc for k in keys):
        raise ValueError(f"{path}: not a latency file (expected the keys {', '.join(keys)})")
    return doc


# --- reading a document -----------------------------------------------------------------

def find(doc: dict, xi: Mapping) -> dict | None:
    """The measured entry of ξ (an architecture, or any record holding its parameters), T included.

    The entry has ξ's parameters, ``ops``, ``params`` and ``latency``; None if ξ was not measured.
    """
    top = doc["maximum_point"]
    names = list(top["architecture"])
    for entry in [{**top["architecture"], **top}, *doc["architectures"]]:
        if all(entry.get(n) == xi.get(n) for n in names):
            return entry
    return None


def lookup(doc: dict, xi: Mapping, batch_size: int) -> float:
    """Measured seconds per forward pass of ξ (see ``find``) at a batch size.

    Raises ValueError (one line) if ξ or the batch size was not measured.
    """
    entry = find(doc, xi)
    if entry is None:
        names = list(doc["maximum_point"]["architecture"])
        raise ValueError(f"{arch_key({n: xi.get(n) for n in names})} was not measured in this latency file")
    if str(batch_size) not in entry["latency"]:
        raise ValueError(f"batch size {batch_size} was not measured (measured: {', '.join(entry['latency'])})")
    return float(entry["latency"][str(batch_size)])


def correlations(doc: dict) -> dict[str, float]:
    """ρ(ops, measured latency) over Ξ (T excluded) for each batch size, keyed like ``latency``."""
    archs = doc["architectures"]
    return {str(b): spearman([a["ops"] for a in archs], [a["latency"][str(b)] for a in archs])
            for b in doc["settings"]["batch_sizes"]}


def rows(doc: dict) -> list[dict]:
    """One row per architecture of Ξ: ξ, ops, latency in ms per batch size, and ratios to T."""
    top = doc["maximum_point"]
    names = list(top["architecture"])
    sizes = [str(b) for b in doc["settings"]["batch_sizes"]]
    out = []
    for a in doc["architectures"]:
        row = {n: a[n] for n in names}
        row["ops"] = a["ops"]
        row.update({f"ms@{b}": 1000 * a["latency"][b] for b in sizes})
        row["ops/T"] = a["ops"] / top["ops"]
        row.update({f"lat/T@{b}": a["latency"][b] / top["latency"][b] for b in sizes})
        out.append(row)
    return out


def runtime_of(doc: dict) -> str:
    """What a latency file timed: ``torch`` (also every file from before the option) or ``onnxruntime``."""
    return doc["settings"].get("runtime", "torch")


def t_spread(doc: dict) -> dict[str, str] | None:
    """How far apart T's measurements lay, per batch size, in words; None for a file from before
    T was measured more than once."""
    samples = doc["maximum_point"].get("samples")
    if not samples:
        return None
    return {b: f"median of {len(v)} spread over the run, {1000 * min(v):.3g}–{1000 * max(v):.3g} ms"
            for b, v in samples.items()}


def summary(doc: dict) -> str:
    """The text ``ose latency`` prints: a header, the table, T's latency and ρ per batch size."""
    s, top = doc["settings"], doc["maximum_point"]
    head = (f"# {s['space'].get('name', 'space')}: {len(doc['architectures'])} architectures + T, "
            f"L={s['seq_len']}, median of {s['repeats']} passes after {s['warmup']} warm-up, "
            f"{s['threads']} thread(s), "
            + (f"ONNX Runtime {s['onnxruntime']} (fp32 graphs)" if runtime_of(doc) == "onnxruntime"
               else f"torch {s['torch']}")
            + f" on {s['machine']['processor']}")
    spread = t_spread(doc)
    t_line = "T = {}: ops={:,}, ".format(arch_key(top["architecture"]), top["ops"]) + ", ".join(
        f"{1000 * top['latency'][str(b)]:.3g} ms at batch {b}" + (f" ({spread[str(b)]})" if spread else "")
        for b in s["batch_sizes"])
    rho = "Spearman ρ(ops, latency) over Ξ: " + ", ".join(
        f"batch {b}: {r:.3f}" for b, r in correlations(doc).items())
    return "\n".join([head, text_table(rows(doc)), t_line, rho])


def compare(models: dict, vocab_size: int, seq_len: int, batch_sizes: Sequence[int] = BATCH_SIZES,
            repeats: int = REPEATS, warmup: int = WARMUP, threads: int = THREADS, rounds: int = 3) -> dict:
    """CPU seconds per forward pass of each named model at each batch size, measured side by side:
    ``rounds`` rounds, each timing every model in turn, and the median of the rounds kept, so a
    machine whose speed drifts moves every model's readings alike. Each model is timed as an fp32
    copy on the CPU, wherever it trained (the figure promised is the CPU's); the models passed in
    are left where they are. A model that is not a torch module (an ONNX Runtime ``deploy.Graph``)
    is timed as it is: it runs on the CPU already."""
    import copy

    models = {name: copy.deepcopy(model).to("cpu", torch.float32).eval() if isinstance(model, torch.nn.Module)
              else model for name, model in models.items()}
    gen = torch.Generator().manual_seed(0)
    inputs = {b: torch.randint(0, vocab_size, (b, seq_len), generator=gen) for b in batch_sizes}
    readings = {name: {str(b): [] for b in batch_sizes} for name in models}
    with _torch_threads(threads):
        for model in models.values():  # discard each model's first, slow timings
            _time(model, inputs[max(batch_sizes)], 1, warmup)
        for _ in range(rounds):
            for name, model in models.items():
                for b in batch_sizes:
                    readings[name][str(b)].append(_time(model, inputs[b], repeats, warmup))
    return {name: {b: statistics.median(v) for b, v in per.items()} for name, per in readings.items()}
