"""Wall time of one extraction on each executor, in one run, printed as ratios to local.

    python benchmarks/executors.py [--space bert-tiny] [--epsilon 6] [--steps 40] [--workers 2]

Each executor runs the same study (same configuration and seed) into its own output
directory; wall time covers everything a user waits for (workers' start-up included).
``local`` runs one evaluation at a time with all usable cores as torch threads; the others
run ``--workers`` evaluations at once with cores/workers threads each.
"""

import argparse
import json
import os
import tempfile
import time

import ose


def timed(executor: str, args, out: str) -> tuple[float, list]:
    t = time.perf_counter()
    res = ose.extract(space=args.space, epsilon=args.epsilon, steps=args.steps, out=out, executor=executor,
                      workers=None if executor == "local" else args.workers, progress=False, log=lambda *a: None)
    return time.perf_counter() - t, [{k: v for k, v in r.items() if k != "seconds"} for r in res.evaluations]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="bert-tiny")
    ap.add_argument("--epsilon", type=int, default=6)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ose.extract(space=args.space, epsilon=len(ose.load_space(args.space).architectures()), steps=1,
                out=tempfile.mkdtemp(), progress=False, log=lambda *a: None)  # warm the tokenizer cache
    times, tables = {}, {}
    for name in ("local", "processes", "ray"):
        with tempfile.TemporaryDirectory() as d:
            times[name], tables[name] = timed(name, args, d)
    print(f"{args.space}, ε = {args.epsilon}, s = {args.steps}, {args.workers} workers, {len(os.sched_getaffinity(0))} cores")
    for name, t in times.items():
        # Workers run with fewer torch threads than local, so floating-point sums may round
        # differently; report the largest difference in ê (0.0 = identical).
        diff = max(abs(a["error"] - b["error"]) for a, b in zip(tables[name], tables["local"]))
        def pick(table):
            return {k: max(table, key=lambda r: r["w"])[k] for k in "DAHI"}

        picks = pick(tables[name]) == pick(tables["local"])
        same = f"max |Δê| vs local {diff:.2g}, {'same' if picks else 'DIFFERENT'} pick"
        print(f"{name:10s} {t:7.1f} s   speed-up over local {times['local'] / t:5.2f}x   ({same})")
    print(json.dumps({k: round(times["local"] / v, 3) for k, v in times.items()}))


if __name__ == "__main__":
    main()
