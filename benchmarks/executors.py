"""Wall time of one extraction on each executor, in one run, printed as ratios to local.

    python benchmarks/executors.py [--space bert-tiny] [--epsilon 3] [--steps 100] [--workers 2]
                                   [--same-threads]

Each executor runs the same study (same configuration and seed) into its own output
directory; wall time covers everything a user waits for (workers' start-up included).
``local`` runs one evaluation at a time with all usable cores as torch threads; the others
run ``--workers`` evaluations at once with cores/workers threads each.

Besides the ratios it prints what bounds them, from the evaluations' own timings:
- *packing*: Σ evaluation seconds / (workers × wall), how busy the workers were kept (1.0 is
  perfect; start-up, the tail and the driver's overhead lower it);
- *ceiling*: local's wall / (Σ evaluation seconds / workers), the speed-up perfect packing
  would give. On a machine where local's intra-op threads already scale well, this is well
  under the worker count.
``--same-threads`` also runs local with the workers' thread count (one more, slower run):
the like-for-like ratio that shows how the executor itself scales.
"""

import argparse
import json
import os
import tempfile
import time

import ose


def timed(executor: str, args, out: str, threads: int | None = None) -> tuple[float, list]:
    t = time.perf_counter()
    res = ose.extract(space=args.space, epsilon=args.epsilon, steps=args.steps, out=out, executor=executor,
                      workers=None if executor == "local" else args.workers, threads=threads, progress=False,
                      log=lambda *a: None)
    return time.perf_counter() - t, res.evaluations


def pick(table: list[dict], names: tuple[str, ...]) -> dict:
    return {k: max(table, key=lambda r: r["w"])[k] for k in names}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="bert-tiny")
    ap.add_argument("--epsilon", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--same-threads", action="store_true", help="also run local with the workers' threads")
    args = ap.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    cores = len(os.sched_getaffinity(0))
    space = ose.load_space(args.space)
    names = space.family.parameters
    ose.extract(space=args.space, epsilon=len(space.architectures()), steps=1,
                out=tempfile.mkdtemp(), progress=False, log=lambda *a: None)  # warm the tokenizer cache
    runs = {"local": ("local", None), "processes": ("processes", None), "ray": ("ray", None)}
    if args.same_threads:
        runs[f"local/{max(1, cores // args.workers)}t"] = ("local", max(1, cores // args.workers))
    times, tables = {}, {}
    for name, (executor, threads) in runs.items():
        with tempfile.TemporaryDirectory() as d:
            times[name], tables[name] = timed(executor, args, d, threads)
    print(f"{args.space}, ε = {args.epsilon}, s = {args.steps}, {len(tables['local'])} evaluations, "
          f"{args.workers} workers, {cores} cores")
    for name, t in times.items():
        # Workers run with fewer torch threads than local, so floating-point sums may round
        # differently; report the largest difference in ê (0.0 = identical).
        diff = max(abs(a["error"] - b["error"]) for a, b in zip(tables[name], tables["local"]))
        same = f"max |Δê| vs local {diff:.2g}, {'same' if pick(tables[name], names) == pick(tables['local'], names) else 'DIFFERENT'} pick"
        line = f"{name:10s} {t:7.1f} s   speed-up over local {times['local'] / t:5.2f}x   ({same})"
        busy = sum(r["seconds"] for r in tables[name])
        if runs[name][0] != "local":
            line += (f"\n{'':10s} packing {busy / (args.workers * t):.2f}, "
                     f"ceiling {times['local'] / (busy / args.workers):.2f}x")
        print(line)
    local_busy = sum(r["seconds"] for r in tables["local"])
    worker_busy = sum(r["seconds"] for r in tables["processes"])
    print(f"local's {cores} threads make one evaluation {worker_busy / local_busy:.2f}x as fast as a worker's "
          f"{max(1, cores // args.workers)}")
    print(json.dumps({k: round(times["local"] / v, 3) for k, v in times.items()}))


if __name__ == "__main__":
    main()
