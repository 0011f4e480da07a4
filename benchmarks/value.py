"""Does ose's pick beat what a user would choose by hand under the same latency budget?

    python benchmarks/value.py                     # all-MiniLM-L6-v2, --task cls, budgets 10/20/40% of T's latency
    python benchmarks/value.py --quick --from DIR  # a small local checkpoint, minutes (the test runs it)

The candidates, their short runs and their final runs are the fidelity benchmark's
(``benchmarks/fidelity.py``: 32 candidates of all-MiniLM-L6-v2's grid, an exhaustive short run,
``ose distil``'s final training of each, distilled from T, capped at ``--final-steps``): a run
stored there is reused, one missing is trained and stored there. Latency is measured here at
batch 1 on this machine (``ose.latency``, as ``--max-latency`` measures it; stored as
``latency.json`` under ``--out``). At each budget (a share of T's measured latency) the arms are:

- ose: ``--objective accuracy`` within the budget, the lowest ê of the feasible candidates
  (``selection.best``; the exhaustive study trained them all, as a budgeted study of this grid at
  ε = 1 would), with ê as ose takes it by default with inherited weights (the last quarter's mean
  training loss after s/2 steps: the fidelity benchmark's ``half`` study), or with ``--ose paper``
  the error rate on B after s steps (the default before issue 21);
- layers: layer dropping, the most of T's layers at T's full width that fit;
- width: all of T's layers, the widest (largest p) that fits;
- largest: the feasible candidate with the most parameters;
- random 1-3: three feasible candidates drawn at random (seeded; they may coincide with others).

Every arm is read on the same final runs: test accuracy (mean over ``--seeds``) with the test
set's 95% interval (binomial, n = the test part's targets), its latency and p. The target (issue
22): ose's pick at least as accurate as every arm at every budget within that interval, and
better than one or more. ``--keep F`` then runs ``ose distil --keep F`` on the study: the
cheapest model verified to keep F of T's test accuracy, with its speed-up over T.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ARMS = ("ose", "layers", "width", "largest", "random 1", "random 2", "random 3")


def _fidelity():
    spec = importlib.util.spec_from_file_location("fidelity", HERE / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the arms -----------------------------------------------------------------------------------

def choose(records: list[dict], latency_ms: dict[str, float], limit_ms: float, t_arch: dict, names: tuple,
           rng: random.Random, ranked: list[dict] | None = None) -> dict[str, dict | None]:
    """Each arm's candidate among ``records`` whose latency is within ``limit_ms`` (None where no
    candidate of the arm's kind fits); ose's is the lowest ê of ``ranked`` (the same candidates,
    their ê as ose's default takes it), returned as its record in ``records``."""
    from ose.strategies.selection import best

    key = lambda r: ",".join(f"{n}={r[n]}" for n in names)  # noqa: E731
    fits = sorted((r for r in records if latency_ms[key(r)] <= limit_ms), key=key)
    if not fits:
        return {arm: None for arm in ARMS}
    depth, widths = names[0], names[1:]
    full_width = [r for r in fits if all(r[n] == t_arch[n] for n in widths)]
    all_layers = [r for r in fits if r[depth] == t_arch[depth]]
    largest = lambda rs: max(rs, key=lambda r: (r["params"], r["ops"])) if rs else None  # noqa: E731
    drawn = rng.sample(fits, min(3, len(fits)))
    by_key = {key(r): r for r in fits}
    pick = best([r for r in (ranked or records) if key(r) in by_key], "accuracy")
    return {"ose": by_key[key(pick)],
            "layers": max(full_width, key=lambda r: r[depth]) if full_width else None,
            "width": largest(all_layers),
            "largest": largest(fits),
            **{f"random {n + 1}": (drawn[n] if n < len(drawn) else None) for n in range(3)}}


def accuracy_of(errors: list[float], targets: int) -> dict:
    """Test accuracy as the mean over seeds, with the test set's 95% binomial interval at that mean."""
    from ose.stats import Z95

    acc = 1 - sum(errors) / len(errors)
    half = Z95 * (acc * (1 - acc) / targets) ** 0.5
    return {"accuracy": acc, "interval": [acc - half, acc + half], "n": targets, "seeds": len(errors),
            "by_seed": [1 - e for e in errors]}


def verdict(rows: dict[str, dict]) -> dict:
    """ose's pick against every other arm at one budget: ``behind`` the arms more accurate than it by
    more than the test set's interval (the target allows none), ``ahead`` those it beats outright."""
    mine = rows["ose"]
    others = {arm: r for arm, r in rows.items() if arm != "ose" and r is not None}
    half = (mine["interval"][1] - mine["interval"][0]) / 2
    return {"behind": sorted(a for a, r in others.items() if r["accuracy"] - mine["accuracy"] > half),
            "ahead": sorted(a for a, r in others.items() if r["accuracy"] < mine["accuracy"]),
            "ahead_beyond_interval": sorted(a for a, r in others.items() if mine["accuracy"] - r["accuracy"] > half)}


# --- latency ------------------------------------------------------------------------------------

def latencies(base: Path, out: Path, repeats: int) -> tuple[dict[str, float], float, dict]:
    """Batch-1 milliseconds of every candidate of the study in ``base`` and of T, measured once on
    this machine (as ``--max-latency`` measures them) and stored in ``out/latency.json``."""
    import torch

    from ose import latency
    from ose.distil import load_study
    from ose.inputs import reopen
    from ose.space import arch_key

    meta, _, _ = load_study(base)
    inputs = reopen(base, meta)
    path = out / latency.LATENCY_FILE
    if path.is_file():
        doc = latency.load(path)
    else:
        torch.set_num_threads(inputs.cfg.threads)
        started = time.perf_counter()
        doc = latency.measure_space(inputs.space, batch_sizes=(1,), repeats=repeats, threads=inputs.cfg.threads,
                                    progress=False, config=inputs.base_config)
        latency.save(path, doc)
        print(f"# latency: {len(doc['architectures'])} candidates and T at batch 1, {inputs.cfg.threads} thread(s), "
              f"median of {repeats} ({time.perf_counter() - started:.0f} s)", flush=True)
    table = {arch_key(xi): 1000 * latency.lookup(doc, xi, 1) for xi in inputs.space.architectures()}
    t_arch = dict(inputs.space.maximum_point)
    return table, 1000 * latency.lookup(doc, t_arch, 1), t_arch


# --- the figure ---------------------------------------------------------------------------------

def draw(path: Path, table: list[dict], t_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({row["budget"] for row in table})
    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets), 3.8), sharey=True, squeeze=False)
    marks = {"ose": ("*", 180, "C3"), "layers": ("s", 50, "C0"), "width": ("^", 50, "C1"), "largest": ("D", 45, "C2")}
    for ax, budget in zip(axes[0], budgets):
        labelled = set()
        for row in (r for r in table if r["budget"] == budget):
            name = "random" if row["arm"].startswith("random") else row["arm"]
            marker, size, colour = marks.get(row["arm"], ("o", 35, "0.55"))
            lo, hi = row["interval"]
            ax.errorbar(row["latency_ms"], row["accuracy"], yerr=[[row["accuracy"] - lo], [hi - row["accuracy"]]],
                        fmt="none", ecolor=colour, alpha=0.5)
            ax.scatter(row["latency_ms"], row["accuracy"], marker=marker, s=size, color=colour,
                       label=None if name in labelled else name, zorder=3)
            labelled.add(name)
        ax.axvline(budget / 100 * t_ms, color="0.3", ls="--", lw=1)
        ax.set_title(f"latency ≤ {budget:g}% of T's ({budget / 100 * t_ms:.2f} ms)", fontsize=9)
        ax.set_xlabel("latency at batch 1 (ms, this CPU)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy after ose distil")
    axes[0][-1].legend(fontsize=7, loc="lower right")  # the loosest budget admits every arm
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- the benchmark ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="source", default="all-MiniLM-L6-v2")
    ap.add_argument("--data", help="labelled data (default: ose's embedded tweets)")
    ap.add_argument("--fidelity", default="benchmarks/runs/fidelity",
                    help="the fidelity benchmark's folder, whose study and final runs are reused (and extended)")
    ap.add_argument("--out", default="benchmarks/runs/value")
    ap.add_argument("--budgets", default="10,20,40", help="latency budgets, percent of T's at batch 1 (at 5%% "
                    "only the grid's smallest candidate fits)")
    ap.add_argument("--steps", type=int, help="s of the short run (default: ose's)")
    ap.add_argument("--final-steps", type=int, help="the cap of each final run (default 150, the fidelity "
                    "benchmark's measured runs; --quick: its quick cap)")
    ap.add_argument("--seeds", default="0,1", help="seeds of the final runs; the accuracy is their mean")
    ap.add_argument("--seed", type=int, default=0, help="draws the random arms")
    ap.add_argument("--repeats", type=int, default=20, help="timed forward passes per model (median)")
    ap.add_argument("--keep", type=float, help="then run ose distil --keep F on the study")
    ap.add_argument("--quick", action="store_true", help="the fidelity benchmark's small grid and short runs")
    ap.add_argument("--stored", action="store_true", help="train nothing more: arms without stored final runs "
                    "are left out (the table says so)")
    ap.add_argument("--figure", help="where to draw accuracy against latency per budget (PNG)")
    ap.add_argument("--ose", choices=("default", "paper"), default="default",
                    help="ê of ose's arm: ose's default with inherited weights (training loss, last quarter, s/2) "
                         "or the paper's (error rate on B, s)")
    args = ap.parse_args(argv)
    fidelity = _fidelity()
    budgets = [float(b) for b in args.budgets.split(",")]
    if not budgets or any(not 0 < b <= 100 for b in budgets):
        ap.error(f"--budgets: percentages of T's latency in (0, 100], got {args.budgets}")
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The fidelity benchmark's own options, so that its study and final runs are the ones reused.
    fid = ["--from", args.source, "--out", args.fidelity, "--seeds", args.seeds, "--stored",
           *(["--data", args.data] if args.data else []), *(["--quick"] if args.quick else []),
           *(["--steps", str(args.steps)] if args.steps else []),
           *(["--final-steps", str(args.final_steps or 150)] if args.final_steps or not args.quick else [])]
    fargs = fidelity.parse(fid)
    base = fargs.root / "study"
    records = fidelity.study(fargs, base, steps=fargs.steps)
    names = fidelity.NAMES
    table_ms, t_ms, t_arch = latencies(base, out, args.repeats)
    print(f"# T = {args.source} {fidelity.key(t_arch)}: {t_ms:.2f} ms at batch 1; {len(records)} candidates, "
          f"{min(table_ms.values()):.2f} to {max(table_ms.values()):.2f} ms", flush=True)

    ranked = records
    if args.ose == "default":  # the same candidates, ranked by the default ê of a study with inherited weights
        half = fidelity.study(fargs, fargs.root / "variant-half", **fidelity.VARIANTS["half"](fargs.steps))
        tail = {fidelity.key(r): r["train_loss_tail"] for r in half}
        ranked = [{**r, "error": tail[fidelity.key(r)]} for r in records]
    chosen = {}
    for budget in budgets:
        rng = random.Random(f"{args.seed}/{budget:g}")
        chosen[budget] = choose(records, table_ms, budget / 100 * t_ms, t_arch, names, rng, ranked)
    arms = {fidelity.key(r): r for picks in chosen.values() for r in picks.values() if r is not None}
    fargs.stored = args.stored
    final = fidelity.finals(fargs, base, list(arms.values()))  # trains what is missing, unless --stored
    targets = fidelity.stored_targets(fargs)

    table, verdicts = [], {}
    print(f"# test accuracy after ose distil (cap {fargs.final_steps}), mean of seeds {args.seeds}, "
          f"95% interval of the test set (n = {targets}); latency at batch 1 on this machine")
    for budget in budgets:
        limit = budget / 100 * t_ms
        fits = sum(ms <= limit for ms in table_ms.values())
        print(f"## latency ≤ {budget:g}% of T's ({limit:.2f} ms): {fits} of {len(table_ms)} candidates fit")
        rows = {}
        for arm in ARMS:
            r = chosen[budget][arm]
            k = fidelity.key(r) if r is not None else None
            errors = [final[s][k] for s in fargs.seeds if k is not None and k in final.get(s, {})]
            if not errors:
                print(f"  {arm:9s} " + ("nothing of its kind fits" if r is None else f"{k}: no stored final run"))
                rows[arm] = None
                continue
            row = {"budget": budget, "arm": arm, "architecture": {n: r[n] for n in names},
                   "params": r["params"], "latency_ms": table_ms[k], "error_on_b": r["error"],
                   **accuracy_of(errors, targets)}
            rows[arm] = row
            table.append(row)
            lo, hi = row["interval"]
            print(f"  {arm:9s} ⟨{k}⟩  accuracy {row['accuracy']:.4f} [{lo:.4f}, {hi:.4f}]  "
                  f"{row['latency_ms']:.2f} ms ({row['latency_ms'] / t_ms:.1%} of T)  p {r['params']:,}  "
                  f"ê {r['error']:.3f}")
        if rows["ose"] is not None:
            verdicts[budget] = verdict(rows)
            v = verdicts[budget]
            print(f"  → ose ahead of {', '.join(v['ahead']) or 'none'} (beyond the interval: "
                  f"{', '.join(v['ahead_beyond_interval']) or 'none'}); behind beyond the interval: "
                  f"{', '.join(v['behind']) or 'none'}")
    met = bool(verdicts) and all(not v["behind"] for v in verdicts.values()) and \
        any(v["ahead"] for v in verdicts.values())
    print(f"# target (never behind beyond the interval, ahead at least once): {'met' if met else 'not met'}")
    report = {"source": args.source, "ose_proxy": args.ose, "t_latency_ms": t_ms, "t_architecture": t_arch,
              "budgets": budgets,
              "final_steps": fargs.final_steps, "seeds": fargs.seeds, "test_targets": targets, "table": table,
              "verdicts": {f"{b:g}": v for b, v in verdicts.items()}, "target_met": met}
    if args.keep is not None:
        report["keep"] = keep(base, args.keep, fargs.final_steps, table_ms, t_ms, names)
    report["seconds"] = round(time.perf_counter() - started)
    print(f"# this run: {report['seconds']} s (runs already stored are reused)")
    if args.figure and table:
        draw(Path(args.figure), table, t_ms)
    (out / "value.json").write_text(json.dumps(report, indent=1))
    return report


def keep(base: Path, floor: float, steps: int, table_ms: dict, t_ms: float, names: tuple) -> dict:
    """``ose distil --keep floor`` on the study: the candidates it tried and the one it verified."""
    from ose.distil import distil_keep

    started = time.perf_counter()
    result = distil_keep(base, floor, steps=steps, log=lambda *a: None, progress=False)
    tried = []
    for xi, r in result.tried:
        k = ",".join(f"{n}={xi[n]}" for n in names)
        tried.append({"architecture": xi, "accuracy": r.accuracy, "teacher_accuracy": r.teacher_accuracy,
                      "ratio": r.accuracy / r.teacher_accuracy, "latency_ms": table_ms.get(k)})
        print(f"# --keep {floor:g}: ⟨{k}⟩ test accuracy {r.accuracy:.4f}, {tried[-1]['ratio']:.3f} of T's "
              f"{r.teacher_accuracy:.4f}; {table_ms[k]:.2f} ms, {t_ms / table_ms[k]:.1f}× faster than T at batch 1")
    verified = tried[-1] if result.verified is not None else None
    print(f"# --keep {floor:g}: " + (f"verified after {len(tried)} distillation(s)" if verified else
                                      f"none of {len(tried)} verified") + f" ({time.perf_counter() - started:.0f} s)")
    return {"floor": floor, "tried": tried, "verified": verified,
            "speedup": t_ms / verified["latency_ms"] if verified else None}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
