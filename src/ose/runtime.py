"""ONNX graphs of transformers models: export (``torch.onnx``), int8 quantization and an ONNX
Runtime session that answers like the model. The primitives both latency tables (``latency``,
``--runtime onnxruntime``) and the deployment of an exported model (``deploy``) use.

Graphs are laid out as Optimum lays them out: inputs ``input_ids``, ``attention_mask`` (a
decoder's also ``position_ids``), output ``logits``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError

GRAPH = "model.onnx"
INT8 = "model_quantized.onnx"
OPSET = 18


def require() -> None:
    """A one-line ConfigError when ONNX Runtime or onnx is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"ONNX export needs onnxruntime and onnx ({e.name} is missing): "
                          f"pip install -e '.[onnx]'") from None


class _Encoder(torch.nn.Module):
    """The model with the graph's named inputs and its logits as the one output."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class _Decoder(_Encoder):
    def forward(self, input_ids, attention_mask, position_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=False).logits


def input_names(model) -> list[str]:
    """The graph's inputs: a decoder takes its positions, as ``ORTModelForCausalLM`` feeds them."""
    return ["input_ids", "attention_mask"] + (["position_ids"] if _decoder(model) else [])


def _decoder(model) -> bool:
    return bool(getattr(model.config, "is_decoder", False)) or model.config.model_type == "llama"


def export_graph(model, path: Path) -> float:
    """Write ``model`` (a transformers model, fp32, CPU) as an ONNX graph with dynamic batch and
    sequence axes; the seconds it took."""
    import warnings

    model = model.to("cpu", torch.float32).eval()
    names = input_names(model)
    ids = torch.randint(5, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    feeds = _feeds(ids, torch.ones_like(ids), names)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    start = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        wrapper = _Decoder(model) if "position_ids" in names else _Encoder(model)
        torch.onnx.export(wrapper, tuple(torch.as_tensor(feeds[n]) for n in names), str(path),
                          input_names=names, output_names=["logits"], opset_version=OPSET, dynamo=True,
                          dynamic_shapes={n: {0: batch, 1: seq} for n in names}, verbose=False,
                          external_data=False)
    return time.perf_counter() - start


def quantize(src: Path, dst: Path) -> float:
    """ONNX Runtime's dynamic int8 quantization of ``src`` (weights int8, activations at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process is printed through the root logger on every call
    try:
        start = time.perf_counter()
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        return time.perf_counter() - start
    finally:
        root.setLevel(level)


def _feeds(input_ids, attention_mask, names: list[str]) -> dict:
    ids = np.asarray(input_ids, dtype=np.int64)
    mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if "position_ids" in names:  # as Optimum derives them: count of real tokens so far
        pos = mask.cumsum(-1) - 1
        feeds["position_ids"] = np.where(mask == 0, 1, pos).astype(np.int64)
    return feeds


class Graph:
    """An ONNX Runtime session that answers like a transformers model: ``graph(input_ids=…,
    attention_mask=…)`` gives the logits as a torch tensor (so ``latency`` times it as it times
    PyTorch)."""

    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001  (any load failure: ORT raises its own types)
            raise ConfigError(f"{path}: ONNX Runtime cannot load the graph ({str(e).splitlines()[0]})") from None
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, input_ids, attention_mask=None) -> torch.Tensor:
        feeds = _feeds(input_ids, attention_mask, self.names)
        return torch.from_numpy(self.session.run(["logits"], {n: feeds[n] for n in self.names})[0])
