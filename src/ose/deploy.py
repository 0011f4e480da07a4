"""Deployment: the exported model as an ONNX graph (fp32, and int8 by dynamic quantization),
checked against PyTorch on the test part and timed in ONNX Runtime beside PyTorch.

The graph is written by ``runtime.export_graph`` (``torch.onnx.export``: ose writes no exporter)
into the model directory as Optimum lays it out: ``model.onnx`` beside config.json and the tokenizer, int8 as
``model_quantized.onnx`` (``ORTModelFor….from_pretrained(DIR, file_name="model_quantized.onnx")``).
Its inputs are the tokenizer's (``input_ids``, ``attention_mask``), a decoder's also
``position_ids``; its output is ``logits``. A decoder's graph has no past key/values: each
generated token recomputes the whole prefix (``use_cache=False``).

Nothing is reported as done unchecked: the fp32 graph's logits must match PyTorch's on every
row of the test part within ``ATOL`` + ``RTOL``·|logit| (else a one-line error), and the int8
model's test accuracy is measured beside fp32's; more than ``INT8_TOLERANCE`` worse is a
warning in the output, the card and ose.json.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from . import jsonout
from .errors import ConfigError
from .runtime import GRAPH, INT8, OPSET, Graph, _feeds, export_graph, quantize, require  # noqa: F401

ATOL, RTOL = 1e-3, 1e-3   # fp32 graph against PyTorch: float reassociation, not a different model
INT8_TOLERANCE = 0.01     # int8 test accuracy may fall this far below fp32's before it is a warning


@dataclass
class Check:
    """A graph's answers on the test part, against PyTorch's."""

    correct_by_row: list[int]
    targets_by_row: list[int]
    max_abs_diff: float   # largest |graph − PyTorch| over every logit of a real (unpadded) position
    within: bool          # every such logit within ATOL + RTOL·|PyTorch's|

    @property
    def accuracy(self) -> float:
        return sum(self.correct_by_row) / sum(self.targets_by_row)

    def facts(self) -> dict:
        from .stats import proportion_interval

        return {"accuracy": self.accuracy, "interval_95": list(proportion_interval(self.correct_by_row,
                                                                                   self.targets_by_row)),
                "targets": sum(self.targets_by_row)}


def check(graph: Graph, model, inputs, chunk: int = 64) -> Check:
    """Run the graph and the PyTorch model over the test part; count right answers at the task's
    target positions (as ``train.measure`` does) and compare every logit."""
    task, test = inputs.task, inputs.data.test
    by_row, per_row = [], []
    worst, within = 0.0, True
    model = model.to("cpu", torch.float32).eval()
    with torch.no_grad():
        for part in test.chunks(chunk):
            out = graph(input_ids=part.input_ids, attention_mask=part.attention_mask)
            ref = model(**{k: torch.as_tensor(v) for k, v in _feeds(part.input_ids, part.attention_mask,
                                                                     graph.names).items()}).logits
            diff, size = (out - ref).abs(), ref.abs()
            if out.dim() == 3:  # one row per position: padded positions answer nothing
                keep = part.attention_mask.bool()
                diff, size = diff[keep], size[keep]
            worst = max(worst, float(diff.max()))
            within = within and bool((diff <= ATOL + RTOL * size).all())
            scored = out if part.positions is None else out[part.positions]
            right = task.correct(scored, part)
            by_row += torch.bincount(part.target_rows(), weights=right.double(), minlength=part.rows).int().tolist()
            per_row += part.targets_per_row().tolist()
    return Check(by_row, per_row, worst, within)


def weights_sha256(model_dir: Path) -> str:
    h = hashlib.sha256()
    for name in sorted(p.name for p in model_dir.glob("*.safetensors")):
        h.update((model_dir / name).read_bytes())
    return h.hexdigest()[:16]


def load(model_dir: Path):
    """The exported PyTorch model of ``model_dir`` and its ose.json facts (ConfigError if it is not
    a model ose exported)."""
    import transformers

    from .export import FACTS
    from .families.weights import quiet_loading

    facts_file = model_dir / FACTS
    if not facts_file.is_file():
        raise ConfigError(f"{model_dir}: not a model ose exported (no {FACTS}); export with ose distil first")
    facts = json.loads(facts_file.read_text())
    config = json.loads((model_dir / "config.json").read_text())
    cls = getattr(transformers, (config.get("architectures") or ["?"])[0], None)
    if cls is None:
        raise ConfigError(f"{model_dir}: config.json names no transformers class ose can load")
    with quiet_loading():
        model = cls.from_pretrained(model_dir).eval()
    return model, facts


def target_check(model_dir: Path, facts: dict, quantize_int8: bool, onnx: bool, force: bool) -> None:
    """Refuse what must not happen: --quantize with no graph to quantize, a graph of other weights."""
    graph, old = model_dir / GRAPH, facts.get("onnx")
    if not onnx and quantize_int8 and not graph.is_file():
        raise ConfigError(f"{model_dir}: --quantize int8 needs the fp32 graph, and there is none ({GRAPH}); add --onnx")
    if graph.is_file() and not force:
        if old is None or old.get("weights_sha256") != weights_sha256(model_dir):
            raise ConfigError(f"{model_dir}: {GRAPH} there is not a graph of this model's weights; use --force to "
                              f"replace it")


def deploy(model_dir: str | Path, run_dir: str | Path | None = None, onnx: bool = True, quantize_int8: bool = False,
           force: bool = False, log=print, rounds: int = 3, repeats: int = 10) -> dict:
    """Export ``model_dir`` (a model ``ose distil`` wrote) to ONNX, check it on its study's test
    part, quantize it to int8 if asked, time T and the model in PyTorch and ONNX Runtime side by
    side, and write the results into ose.json and the card. Returns ose.json's ``onnx`` section."""
    from .distil import load_study
    from .export import CARD, FACTS, model_card
    from .inputs import reopen

    require()
    model_dir = Path(model_dir)
    model, facts = load(model_dir)
    target_check(model_dir, facts, quantize_int8, onnx, force)
    run_dir = Path(run_dir) if run_dir else model_dir.parent
    meta, _, _ = load_study(run_dir, partial=True)
    inputs = reopen(run_dir, meta)
    if inputs.data.test is None:
        raise ConfigError(f"{run_dir}: the study has no test part to check the graph on")
    graph_file, out = model_dir / GRAPH, dict(facts.get("onnx") or {})
    if onnx or not graph_file.is_file():
        log(f"deploy: exporting {model_dir} to ONNX ({GRAPH}, opset {OPSET})")
        out = {"export_seconds": export_graph(model, graph_file)}
    found = check(Graph(graph_file), model, inputs)
    if not found.within:
        graph_file.unlink()
        raise ConfigError(f"{model_dir}: the ONNX graph's logits differ from PyTorch's by up to "
                          f"{found.max_abs_diff:.3g} on the test part (tolerance {ATOL:g} + {RTOL:g}·|logit|); "
                          f"nothing exported")
    reference = model.to("cpu", torch.float32)
    torch_acc = check_torch(reference, inputs)
    out.update({"file": GRAPH, "opset": OPSET, "weights_sha256": weights_sha256(model_dir),
                "max_abs_diff": found.max_abs_diff, "tolerance": {"atol": ATOL, "rtol": RTOL},
                "pytorch": torch_acc, "fp32": found.facts(), "inputs": Graph(graph_file).names,
                "past_key_values": False, "runtime": _runtime()})
    log(f"deploy: fp32 graph matches PyTorch on the test part (largest difference {found.max_abs_diff:.2g}); "
        f"test accuracy {found.accuracy:.4f}" + (f"; exported in {out['export_seconds']:.1f} s" if onnx else ""))
    graphs = {"ORT fp32": graph_file}
    if quantize_int8:
        out["quantize_seconds"] = quantize(graph_file, model_dir / INT8)
        low = check(Graph(model_dir / INT8), model, inputs)
        out["int8"] = {"file": INT8, **low.facts(), "max_abs_diff": low.max_abs_diff,
                       "tolerance": INT8_TOLERANCE, "within_tolerance": low.accuracy >= found.accuracy - INT8_TOLERANCE}
        graphs["ORT int8"] = model_dir / INT8
        log(f"deploy: int8 test accuracy {low.accuracy:.4f} against fp32's {found.accuracy:.4f}")
        if not out["int8"]["within_tolerance"]:
            log(f"warning: the int8 model is {100 * (found.accuracy - low.accuracy):.1f} points less accurate than "
                f"fp32 on the test part (tolerance {100 * INT8_TOLERANCE:g}); serve {GRAPH} instead")
    out["latency_seconds"] = _timings(model, graphs, inputs, rounds, repeats, log)
    facts["onnx"] = out
    (model_dir / FACTS).write_text(jsonout.dumps(facts, indent=2))
    (model_dir / CARD).write_text(model_card(facts))
    return out


def check_torch(model, inputs) -> dict:
    from .train import measure

    m = measure(model, inputs.family, inputs.task, inputs.data.test, inputs.cfg)
    return {"accuracy": m.accuracy, "interval_95": list(m.interval()), "targets": m.targets}


def _runtime() -> dict:
    import onnxruntime

    return {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__, "threads": 1}


def _timings(model, graphs: dict, inputs, rounds: int, repeats: int, log) -> dict:
    """Seconds per forward pass at batch 1 and 32, PyTorch and each graph, for the model and for T
    (T's shape with random weights: its time does not depend on them), side by side."""
    from . import latency

    t_model = inputs.build(dict(inputs.space.maximum_point)).eval()
    runners = {"model": {"PyTorch fp32": model}, "T": {"PyTorch fp32": t_model}}
    with tempfile.TemporaryDirectory() as tmp:
        t_graph = Path(tmp) / GRAPH
        log("deploy: exporting T's shape to time it in ONNX Runtime")
        export_graph(t_model, t_graph)
        t_graphs = {"ORT fp32": t_graph}
        if "ORT int8" in graphs:
            quantize(t_graph, Path(tmp) / INT8)
            t_graphs["ORT int8"] = Path(tmp) / INT8
        for name, path in graphs.items():
            runners["model"][name] = Graph(path)
        for name, path in t_graphs.items():
            runners["T"][name] = Graph(path)
        flat = {f"{who}|{how}": r for who, per in runners.items() for how, r in per.items()}
        log(f"deploy: timing {len(flat)} runners side by side ({rounds} rounds, 1 thread)")
        times = latency.compare(flat, inputs.space.settings.vocab_size, inputs.space.settings.seq_len,
                                rounds=rounds, repeats=repeats)
    out: dict = {}
    for key, per in times.items():
        who, how = key.split("|")
        out.setdefault(who, {})[how] = per
    return out
