"""Closed-form surrogates vs building and tracing each transformers model, in one run.

    python benchmarks/surrogates.py [--sample N] [--all]

Times ``space.candidates()`` (p and i of every architecture in the space, sorted, the
O(|Ξ|) step of Algorithm 1) against building each model with transformers and counting a
forward pass with FlopCounterMode (eager attention, L = the space's seq_len). Tracing real
models of the paper's space takes minutes, so by default an evenly spread sample is traced
and the per-architecture mean is scaled to |Ξ|; ``--all`` traces every one. The meta-device
variant (no weights allocated) is a lower bound on what tracing can cost.
"""

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ose import load_space


def closed_form(space, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        space.candidates()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def trace(space, xi, device: str) -> None:
    with torch.device(device):
        model = space.family.build(xi, space.settings, attn="eager").eval()
        ids = torch.zeros(1, space.settings.seq_len, dtype=torch.long)
    with FlopCounterMode(display=False), torch.no_grad():
        model(input_ids=ids)


def traced(space, archs, device: str) -> float:
    t = time.perf_counter()
    for xi in archs:
        trace(space, xi, device)
    return (time.perf_counter() - t) / len(archs) * len(space.architectures())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="bert-paper")
    ap.add_argument("--sample", type=int, default=20, help="architectures traced on CPU (evenly spread)")
    ap.add_argument("--all", action="store_true", help="trace every architecture (slow)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    space = load_space(args.space)
    archs = space.architectures()
    step = 1 if args.all else max(1, len(archs) // args.sample)
    sample = archs[::step]
    fast = closed_form(space, repeats=20)
    meta = traced(space, archs, "meta")
    cpu = traced(space, sample, "cpu")
    n = len(archs)
    print(f"space {space.name}: |Ξ| = {n}")
    print(f"closed form, all {n} scored and sorted (median of 20): {fast * 1e3:.1f} ms")
    print(f"build + FlopCounterMode on meta, all {n}:               {meta:.2f} s   ratio {meta / fast:,.0f}x")
    print(f"build + FlopCounterMode on CPU, {len(sample)} traced, scaled to {n}: {cpu:.1f} s   ratio {cpu / fast:,.0f}x")


if __name__ == "__main__":
    main()
