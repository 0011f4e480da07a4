"""Does the short run rank candidates like a long run? ê after s steps against ê after k·s steps.

    python benchmarks/surrogate_rank.py [--from all-MiniLM-L6-v2] [--steps 20] [--factor 5]

On one space below a pretrained T (a narrowed grid of its default one, every candidate
trained: exhaustive), for candidates that inherit T's weights and for candidates that start
from scratch, it trains each candidate for s and for k·s steps and prints, per mode, the
spread of the short ê (in accuracy points) and Spearman's ρ between short and long ê.
Targets, with inherit: ρ ≥ 0.8 and a spread of at least 10 points, the evidence that W is
decided by more than size. Studies go to benchmarks/runs/surrogate_rank/ and resume.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ose
from ose.latency import spearman

SPACE = """
family = "bert"
constraints = ["H == 32 * A"]
[parameters]
D = [1, 2, 4, 6]
A = [4, 8, 12]
H = [128, 256, 384]
I = [768]
[maximum_point]
D = 1
A = 1
H = 1
I = 1
"""


def run(args, init: str, steps: int, out: Path):
    return ose.extract(source=args.source, space=str(out.parent / "space.toml"), task="cls", init=init,
                       strategy="exhaustive", epsilon=1, steps=steps, seed=args.seed, out=str(out),
                       progress=False, log=lambda *a: None)


def errors(result) -> dict[str, float]:
    names = ("D", "A", "H", "I")
    return {",".join(f"{n}={r[n]}" for n in names): float(r["error"]) for r in result.evaluations
            if r["status"] == "ok"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", default="all-MiniLM-L6-v2")
    ap.add_argument("--steps", type=int, default=20, help="s, the search's short run")
    ap.add_argument("--factor", type=int, default=5, help="k: the long run is k·s steps (k ≥ 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/runs/surrogate_rank")
    args = ap.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    (root / "space.toml").write_text(SPACE)
    print(f"# T = {args.source}; 12 candidates (D ∈ 1,2,4,6 × H ∈ 128,256,384 with whole heads × I = 768), "
          f"cls on the embedded tweets; short s = {args.steps}, long {args.factor}·s = {args.factor * args.steps}")
    for init in ("inherit", "scratch"):
        short = errors(run(args, init, args.steps, root / f"{init}-short"))
        long = errors(run(args, init, args.factor * args.steps, root / f"{init}-long"))
        keys = sorted(set(short) & set(long))
        rho = spearman([short[k] for k in keys], [long[k] for k in keys])
        spread = 100 * (max(short.values()) - min(short.values()))
        verdict = (f"  targets (inherit): ρ ≥ 0.8 {'met' if rho >= 0.8 else 'MISSED'}, spread ≥ 10 points "
                   f"{'met' if spread >= 10 else 'MISSED'}" if init == "inherit" else "")
        print(f"{init:>8}: spread of short ê {spread:5.1f} points ({min(short.values()):.3f}–{max(short.values()):.3f}),"
              f" Spearman ρ(short ê, long ê) = {rho:.3f} over {len(keys)} candidates{verdict}")
        for k in keys:
            print(f"          {k:<26} short ê {short[k]:.3f}   long ê {long[k]:.3f}")


if __name__ == "__main__":
    main()
