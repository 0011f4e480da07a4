"""How close each search strategy gets to the optimum W*, and for how much training compute.

    python benchmarks/search_quality.py [--space bert-tiny] [--task TASK] [--steps 30] [--factor 10]
                                         [--seeds 5] [--epsilon 3] [--runs benchmarks/runs] [--workers 2]

1. Ground truth: every ξ ∈ Ξ trained for k × s steps (``ose groundtruth``); its ê gives the
   "true" W of every architecture, and W* = max true W.
2. For each seed, the s-step evaluation of every ξ (an exhaustive study with that seed).
   Evaluations are deterministic in (configuration, ξ, θ, seed), so this table holds exactly
   what any strategy's own training of ξ would measure with that seed.
3. Each strategy is run (``ose.pipeline.drive``, the loop ``ose extract`` uses) against that
   table: FPTAS with ε, and random, NSGA-II and TPE with the same budget of ⌈|Ξ|/ε⌉ trainings
   of s steps; exhaustive trains all |Ξ|. Its pick (argmax W of what it trained) is scored
   by its *true* W.

Prints, per strategy, the median over seeds of W(pick)/W* and the training compute (steps
summed over trainings) relative to exhaustive. Studies are stored under ``--runs`` and are
resumed if the script is run again.
"""

import argparse
import json
import statistics
from pathlib import Path

import ose
from ose.config import ExtractConfig
from ose.pipeline import drive, job_key
from ose.strategies.selection import best
from ose.strategies import make_strategy
from ose.config import Theta

STRATEGIES = ("fptas", "exhaustive", "random", "nsga2", "tpe")


def study(args, out: Path, seed: int, steps: int) -> dict:
    res = ose.extract(space=args.space, task=args.task, strategy="exhaustive", epsilon=1, steps=steps, seed=seed,
                      out=str(out), theta=[args.theta], executor="processes" if args.workers > 1 else "local",
                      workers=args.workers if args.workers > 1 else None, progress=args.progress,
                      log=lambda *a: None)
    return {job_key({k: r[k] for k in args.names}, Theta(**args.theta)): r for r in res.evaluations}


def replay(name: str, args, table: dict, seed: int):
    """Run a strategy against the table; return (its pick, trainings spent)."""
    space = ose.load_space(args.space)
    strategy = make_strategy(name, space.candidates(), args.epsilon, None, "first", seed)
    seen = []

    def run_jobs(jobs):
        seen.extend(k for k, _, _ in jobs)
        return {k: table[k] for k, _, _ in jobs}

    drive(strategy, [Theta(**args.theta)], run_jobs,
          None if strategy.adaptive else strategy.ask(strategy.budget))
    return best([table[k] for k in seen]), len(seen)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="bert-tiny")
    ap.add_argument("--task", help="the error surrogate's task (default: the family's first, mlm or clm)")
    ap.add_argument("--steps", type=int, default=30, help="s")
    ap.add_argument("--factor", type=int, default=10, help="k: ground truth trains k × s steps")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epsilon", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", default="benchmarks/runs")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args()
    default = ExtractConfig().theta[0]
    args.theta = {"lr": default.lr, "momentum": default.momentum, "batch_size": args.batch_size}
    space = ose.load_space(args.space)
    args.names, args.task = space.family.parameters, args.task or space.family.tasks[0]
    runs = Path(args.runs) / f"{args.space}-{args.task}-s{args.steps}-b{args.batch_size}"
    truth = study(args, runs / f"groundtruth-k{args.factor}", 0, args.factor * args.steps)
    true_w = {k.split("|")[0]: float(r["w"]) for k, r in truth.items() if r["status"] == "ok"}
    w_star = max(true_w.values())
    optimum = max(true_w, key=true_w.get)
    scores = {n: [] for n in STRATEGIES}
    spent = {n: [] for n in STRATEGIES}
    picks = {n: [] for n in STRATEGIES}
    n_space = len(space.architectures())
    for seed in range(args.seeds):
        table = study(args, runs / f"table-seed{seed}", seed, args.steps)
        for name in STRATEGIES:
            pick, trainings = replay(name, args, table, seed)
            key = ",".join(f"{k}={pick[k]}" for k in args.names)
            scores[name].append(true_w[key] / w_star)
            spent[name].append(trainings / n_space)
            picks[name].append(key)
    print(f"{args.space} ({args.task}): |Ξ| = {n_space}, s = {args.steps}, ground truth k × s = {args.factor * args.steps} steps, "
          f"ε = {args.epsilon}, θ = {args.theta}, seeds = {args.seeds}")
    print(f"W* = {w_star:.4f} at {optimum}")
    print(f"{'strategy':10s} {'median W(pick)/W*':>18s} {'min':>6s} {'compute/exhaustive':>19s}  picks")
    for name in STRATEGIES:
        print(f"{name:10s} {statistics.median(scores[name]):18.3f} {min(scores[name]):6.3f} "
              f"{statistics.median(spent[name]):19.3f}  {', '.join(sorted(set(picks[name])))}")
    print(json.dumps({n: {"median_ratio": statistics.median(scores[n]), "compute": statistics.median(spent[n])}
                      for n in STRATEGIES}))


if __name__ == "__main__":
    main()
