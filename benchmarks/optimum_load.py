"""Do Optimum's ORTModelFor… classes load what `ose export --onnx` writes, and answer as the
ONNX Runtime session does? Run in a separate virtualenv: optimum-onnx 0.1.0 needs
transformers < 4.58, and ose runs on transformers 5.

    python3.11 -m venv /tmp/ovenv && . /tmp/ovenv/bin/activate
    pip install torch==2.13.0 "transformers<4.58" "optimum~=2.1.0" optimum-onnx==0.1.0 onnxruntime==1.32.0
    python benchmarks/optimum_load.py runs/demo/model            # a classifier (fp32 and int8)
    python benchmarks/optimum_load.py runs/llama/model --decoder # a decoder: generate, greedy

The tokenizer is read from tokenizer.json directly: transformers 4.57 does not know the tokenizer
class name transformers 5 writes into tokenizer_config.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

TEXTS = ["what a lovely day", "the worst service I have had in years, truly", "meh"]


def classifier(model_dir: Path) -> None:
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import PreTrainedTokenizerFast, pipeline

    tok = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"), pad_token="[PAD]",
                                  model_input_names=["input_ids", "attention_mask"])
    for name in ("model.onnx", "model_quantized.onnx"):
        if not (model_dir / name).is_file():
            continue
        session = ort.InferenceSession(str(model_dir / name), providers=["CPUExecutionProvider"])
        raw = session.run(["logits"], dict(tok(TEXTS, padding=True, return_tensors="np")))[0]
        model = ORTModelForSequenceClassification.from_pretrained(model_dir, file_name=name)
        got = model(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
        labels = [a["label"] for a in pipeline("text-classification", model=model, tokenizer=tok)(TEXTS)]
        print(f"{name}: Optimum against the ONNX Runtime session, largest logit difference "
              f"{float(np.abs(got - raw).max()):.3g}; pipeline labels {labels}")


def decoder(model_dir: Path) -> None:
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers import AutoModelForCausalLM

    config = json.loads((model_dir / "config.json").read_text())
    ids = torch.tensor([[config.get("bos_token_id") or 0, 9, 23, 40]])
    model = ORTModelForCausalLM.from_pretrained(model_dir, use_cache=False, use_io_binding=False)
    got = model.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    want = AutoModelForCausalLM.from_pretrained(model_dir).generate(ids, max_new_tokens=6, min_new_tokens=6,
                                                                    do_sample=False, use_cache=False)
    print(f"ORTModelForCausalLM.generate {got.tolist()}, transformers {want.tolist()}: "
          f"{'the same' if got.tolist() == want.tolist() else 'DIFFERENT'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--decoder", action="store_true")
    args = p.parse_args()
    (decoder if args.decoder else classifier)(args.model_dir)


if __name__ == "__main__":
    main()
