"""A checkpoint's weight files: one file, or an index and its shards. No torch here: ``ose count
--from`` and ``ose space --from`` read a checkpoint's tensor names and shapes without it."""

from __future__ import annotations

import json
from pathlib import Path

# A checkpoint's weights: one file, or an index naming the shards each tensor is in (as
# ``save_pretrained`` writes a model larger than its shard size).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


def shard_files(weights: str | Path) -> list[Path]:
    """The files holding a checkpoint's tensors: the file itself, or every shard its index names
    (ValueError, one line, for an index that is not one or names a missing shard)."""
    weights = Path(weights)
    if not weights.name.endswith(".index.json"):
        return [weights]
    try:
        weight_map = json.loads(weights.read_text())["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{weights.name} is not a shard index ({type(e).__name__}: {e})") from None
    missing = [n for n in names if not (weights.parent / n).is_file()]
    if missing:
        raise ValueError(f"{weights.name} names shard {missing[0]}, which is missing")
    return [weights.parent / n for n in names]
