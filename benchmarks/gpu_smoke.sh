#!/usr/bin/env bash
# GPU smoke test of the --from wing: extract, distil (killed once and resumed), export, on CUDA.
#
#   bash benchmarks/gpu_smoke.sh            # on a machine with a GPU (torch with CUDA, transformers)
#   DEVICE=cpu bash benchmarks/gpu_smoke.sh # the same steps on the CPU, to check the script itself
#
# It builds a small BERT checkpoint locally (random weights, a WordPiece tokenizer trained on the
# embedded tweets), then: ose extract --from it on DEVICE; ose distil killed right after the
# student's first saved state and resumed; a second, uninterrupted distil of a copy of the study;
# and checks that (1) the resumed model equals the uninterrupted one tensor for tensor (the CPU and
# CUDA random states were restored), (2) the export loads and classifies on the CPU, and (3) the
# card's latency was measured on the CPU. Needs nothing from the network. Writes under $OUT (or
# /tmp/ose-gpu-smoke) and prints PASS or the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
W=${OUT:-/tmp/ose-gpu-smoke}
rm -rf "$W/work"; mkdir -p "$W/work"; export OSE_CACHE="$W/work/cache"
python - "$W/work/ckpt" <<'PY'
import sys, torch
from transformers import BertConfig, BertModel
from ose.config import ExtractConfig
from ose.data import read_examples, train_wordpiece
from ose.export import tokenizer_for_export
path = sys.argv[1]
tok = train_wordpiece([e.text for e in read_examples(ExtractConfig(max_examples=3000))], 1024)
torch.manual_seed(0)
BertModel(BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=256, max_position_embeddings=64)).save_pretrained(path)
tokenizer_for_export(tok, 64).save_pretrained(path)
PY
python -m ose extract --from "$W/work/ckpt" --task cls --seq-len 32 --max-examples 6000 --eval-batches 4 --epsilon 8 --steps 20 \
    --device "$DEVICE" --quiet --out "$W/work/run" | tee "$W/extract.log"
grep -q "device $DEVICE/" "$W/extract.log" || { echo "FAIL: the extraction did not run on $DEVICE"; exit 1; }
cp -r "$W/work/run" "$W/work/copy"
set +e
OSE_FAULT=save-student:1 python -m ose distil "$W/work/run" --steps 40 --save-every 10 --quiet --out "$W/work/resumed"
code=$?
set -e
[ "$code" -eq 137 ] || { echo "FAIL: the kill point was not reached (exit $code)"; exit 1; }
python -m ose distil "$W/work/run" --steps 40 --save-every 10 --out "$W/work/resumed" | tee "$W/distil.log"
python -m ose distil "$W/work/copy" --steps 40 --save-every 10 --quiet --out "$W/work/whole"
python - "$W/work" "$DEVICE" <<'PY'
import json, sys
from pathlib import Path
import torch
from safetensors.torch import load_file
from transformers import pipeline
work, device = Path(sys.argv[1]), sys.argv[2]
a, b = load_file(work / "resumed" / "model.safetensors"), load_file(work / "whole" / "model.safetensors")
assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed model differs from an uninterrupted one"
facts = json.loads((work / "resumed" / "ose.json").read_text())
print("test accuracy", facts["model"]["accuracy"], "T", facts["T"]["accuracy"], "on", facts["test"]["rows"], "rows")
print("CPU latency (s):", facts["latency_seconds"])
print(pipeline("text-classification", model=str(work / "resumed"), device="cpu")("what a lovely day"))
assert not (work / "resumed" / ".distil").exists()
print("PASS on", device, torch.cuda.get_device_name(0) if device == "cuda" else "")
PY
