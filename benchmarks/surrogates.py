"""Closed-form surrogates vs building and tracing each transformers model, in one run.

    python benchmarks/surrogates.py [--sample N] [--all]
    python benchmarks/surrogates.py --grid-size 1000000 [--max-params 30%]

Times ``space.candidates()`` (p and i of every architecture in the space, sorted, the
O(|Ξ|) step of Algorithm 1) against building each model with transformers and counting a
forward pass with FlopCounterMode (eager attention, L = the space's seq_len). Tracing real
models of the paper's space takes minutes, so by default an evenly spread sample is traced
and the per-architecture mean is scaled to |Ξ|; ``--all`` traces every one. The meta-device
variant (no weights allocated) is a lower bound on what tracing can cost.

``--grid-size N``: a fine grid as users of big models write it, about N architectures below a
Llama-3-8B-like T (D 1-32, A 1-32, K 1-8, H in steps of 128, I in steps of 256 or coarser to
reach N; heads of even size, key/value width at most T's). It times, median of ``--repeats``,
ose's array path (``grid.table``: every p(ξ) and i(ξ), the constraints, Algorithm 1's sort, then a
``--max-params`` budget) against the per-architecture path (``SearchSpace.candidates``: one
``Candidate`` and one cost at a time, then the same sort and budget) on an evenly spread sample
of ``--sample-rows`` architectures scaled to N (the whole of it with ``--all``), and checks that
the two agree on every sampled row.
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


FINE_GRID = """
name = "llama-8b-fine"
family = "llama"
constraints = ["H % A == 0", "A % K == 0", "(H // A) % 2 == 0", "K * H <= 1024 * A"]
[parameters]
D = {D}
A = {A}
K = [1, 2, 4, 8]
H = {H}
I = {I}
[maximum_point]
D = 32
A = 32
K = 8
H = 4096
I = 14336
[settings]
vocab_size = 128256
max_positions = 8192
seq_len = 128
tie_embeddings = false
head = "lm"
rope_theta = 500000.0
rms_norm_eps = 1e-5
"""
PER_I = 19_296  # architectures of the fine grid per value of I


def fine_grid(size: int) -> dict:
    """The fine grid's space file, read, with about ``size`` architectures."""
    import tempfile
    from pathlib import Path

    from ose.space import read_space

    count = max(1, min(56, round(size / PER_I)))
    widths = sorted({int(round(x / 256)) * 256 for x in [256 + (14336 - 256) * k / max(1, count - 1)
                                                         for k in range(count)]})
    text = FINE_GRID.format(D=list(range(1, 33)), A=list(range(1, 33)), H=list(range(128, 4097, 128)), I=widths)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fine.toml"
        path.write_text(text)
        return read_space(str(path))


def grid_benchmark(args) -> None:
    import numpy as np

    from ose import budgets
    from ose.grid import table
    from ose.space import Candidate, _intermediate_key, space_from_dict

    raw = fine_grid(args.grid_size)
    chosen = [budgets.parse("params", args.max_params)]

    def fast():  # everything from the file: constraints, every p(ξ) and i(ξ), T's check, the sort, the budget
        space = space_from_dict(*raw)
        return space, budgets.feasible(table(space), chosen, space.max_cost)

    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        space, kept = fast()
        times.append(time.perf_counter() - t)
    ordered = table(space)
    n = len(ordered)
    rows = np.arange(n) if args.all else np.unique(np.linspace(0, n - 1, min(n, args.sample_rows)).astype(int))
    xis = [dict(zip(ordered.names, map(int, ordered.xi[i]))) for i in rows]
    t = time.perf_counter()
    slow = sorted((Candidate(xi, space.cost(xi)) for xi in xis), key=_intermediate_key)
    slow_kept = budgets.feasible(slow, chosen, space.max_cost)
    per_row = (time.perf_counter() - t) / len(xis)
    # the sample's rows are in Ξ's order already: the per-architecture sort must keep them so
    assert [c.xi for c in slow] == xis, "the array path's order differs from the per-architecture sort"
    for i, c in zip(rows[:2000], slow[:2000]):
        assert ordered.counts["params"][i] == c.cost.params and ordered.counts["ops"][i] == c.cost.ops
    assert len(slow_kept) == int(np.sum(ordered.counts["params"][rows] <= chosen[0].limit(space.max_cost.params)))
    fast_s = statistics.median(times)
    print(f"fine grid below a Llama-3-8B-like T: |Ξ| = {n:,} architectures")
    print(f"array path: from the space file to Ξ checked, scored, sorted and cut to --max-params {args.max_params} "
          f"({len(kept):,} fit), median of {args.repeats}: {fast_s:.3f} s ({fast_s / n * 1e6:.2f} µs an architecture)")
    scope = "all" if args.all else f"{len(xis):,} sampled, scaled to {n:,}"
    print(f"per-architecture path ({scope}; cost, sort and cut only, its constraint check of the product's "
          f"rows not counted): {per_row * 1e6:.1f} µs an architecture, {per_row * n:.1f} s   "
          f"ratio {per_row * n / fast_s:,.0f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="bert-paper")
    ap.add_argument("--sample", type=int, default=20, help="architectures traced on CPU (evenly spread)")
    ap.add_argument("--all", action="store_true", help="trace every architecture (slow); with --grid-size, cost "
                    "every architecture the per-architecture way")
    ap.add_argument("--grid-size", type=int, help="time a fine grid of about this many architectures instead")
    ap.add_argument("--max-params", default="30%", help="the budget the grid is cut to (default 30%%)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sample-rows", type=int, default=20000, help="rows the per-architecture path costs")
    args = ap.parse_args()
    if args.grid_size:
        return grid_benchmark(args)
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
