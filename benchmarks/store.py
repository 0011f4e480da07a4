"""Overhead of the study store per evaluation, as a fraction of one candidate's training.

    python benchmarks/store.py [--writes 200] [--steps 100]

Measures, in one run: the mean wall time of ``SQLiteStore.add`` (one transaction, WAL,
on the output directory's disk) for real evaluation records, and the training time of the
cheapest bert-tiny candidate for s steps on the embedded corpus. The ratio is the store's
share of an evaluation at its smallest; larger candidates make it smaller still.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ose.config import ExtractConfig
from ose.context import make_context
from ose.evaluate import evaluate
from ose.space import load_space
from ose.store import open_store
from ose.config import Theta


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = ExtractConfig(steps=args.steps, threads=2)
    space = load_space(cfg.space)
    ctx = make_context(cfg, space)
    cheapest = space.candidates()[0]
    record = evaluate(ctx, cheapest.xi, Theta())
    with tempfile.TemporaryDirectory() as d:
        store = open_store(Path(d))
        store.init({"settings": {}, "jobs": []})
        t = time.perf_counter()
        for i in range(args.writes):
            store.add(f"k{i}", record, cheapest.xi, Theta().as_dict())
        per_write = (time.perf_counter() - t) / args.writes
        store.close()
    print(f"store write (one evaluation, one transaction): {per_write * 1e3:.2f} ms (mean of {args.writes})")
    print(f"training of the cheapest bert-tiny candidate {cheapest.xi}, s = {args.steps}: {record['seconds']:.2f} s")
    print(f"store overhead per evaluation: {per_write / record['seconds']:.2e} of the training time "
          f"({per_write / record['seconds'] * 100:.4f}%)")


if __name__ == "__main__":
    main()
