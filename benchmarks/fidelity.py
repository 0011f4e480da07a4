"""How well does the search's short run rank candidates by the error they end with?

    python benchmarks/fidelity.py                      # all-MiniLM-L6-v2, --task cls, 32 candidates
    python benchmarks/fidelity.py --quick --from DIR   # a small local checkpoint, minutes (the test runs it)

Short: ê from the search's run of s steps (an exhaustive study over the candidates, default s and
|B|), and the other per-candidate proxies the same run stores (cross-entropy on B, the training
loss at the end and its last quarter's mean), plus the proxies of variant studies (``--variants``:
2s, s/2, two seeds at s/2 each averaged (``--repeats 2``: the same compute as one run of s),
distillation during the search, which also stores the KL divergence from T on B). A larger B is not
among them (B is carved from the held-out part first, so it would shrink the test part the finals
are read on). Final: the test error after ``ose distil``'s default final training of each candidate
(distilled from T, early stopping on a validation part), once per seed in ``--seeds``. T's
fine-tune (the teacher and yardstick) is ``ose distil``'s own, trained once in the study folder and
reused by a later ``ose distil`` of the study.

It prints, each with a 95% percentile-bootstrap interval over candidates and its n: Spearman's
ρ(proxy, final) for every proxy, against each seed's finals and against their mean (less noisy),
with size as the baselines (−p, p of the layers the search sorts by, and −i: the larger, the lower
the error expected, so that a good size ranker has ρ > 0); the within-size pair accuracy (pairs
whose p differ by at most 25%: the share the proxy orders as the final error does; chance is 0.5, p
cannot order them); the ceiling, ρ between the final errors of two seeds, and what it bounds: a
proxy that knew each candidate's expected final error exactly would agree with one seed's finals at
about √ρ and with the mean of two at about √(2ρ/(1+ρ)) (Spearman's correction for attenuation); and
each proxy's ρ against the mean finals minus ê's, on the same resamples (paired). Targets (issue
21): ρ ≥ 0.8 with the interval's lower end ≥ 0.6, above ρ(p, final), pair accuracy ≥ 0.75.

Everything is stored under ``--out`` as it finishes (studies resume; each final run is one line
of ``finals.jsonl`` and its training state is saved every 25 steps): an interrupted benchmark
continues where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import ose
from ose.stats import bootstrap_interval, pair_agreement, spearman

NAMES = ("D", "A", "H", "I")
GRID = """
family = "bert"
constraints = ["H == {per_head} * A"]
[parameters]
D = {D}
A = {A}
H = {H}
I = {I}
[maximum_point]
D = 1
A = 1
H = 1
I = 1
"""
# 32 candidates of all-MiniLM-L6-v2's default grid (whole 32-wide heads): depth 1-6, width 128-384, both
# ends of I, so that a deep-narrow and a shallow-wide candidate of one size meet in the pairs.
FULL = {"per_head": 32, "D": [1, 2, 4, 6], "A": [4, 6, 8, 12], "H": [128, 192, 256, 384], "I": [384, 1536]}
QUICK = {"per_head": 16, "D": [1, 2, 4], "A": [2, 4], "H": [32, 64], "I": [64, 128]}
PAIR_RATIO = 1.25


def key(r: dict) -> str:
    return ",".join(f"{n}={r[n]}" for n in NAMES)


def study(args, out: Path, **options) -> list[dict]:
    """The finished evaluations of an exhaustive study over the grid (resumed where stored)."""
    # ê stored as the error rate on B, whatever ose's default metric: every record also keeps the other proxies
    options = {"metric": "error", **options}
    result = ose.extract(source=args.source, space=str(args.root / "space.toml"), task="cls", strategy="exhaustive",
                         epsilon=1, out=str(out), progress=False, log=lambda *a: None,
                         **({"data": args.data} if args.data else {}), **options)
    return [r for r in result.evaluations if r["status"] == "ok"]


# --- the final runs ---------------------------------------------------------------------------

def finals(args, base: Path, records: list[dict]) -> dict[int, dict[str, float]]:
    """{seed: {candidate: test error}} after ose distil's final training, one run at a time, each
    appended to finals.jsonl as it ends (a rerun skips what is there)."""
    import torch

    from ose.config import Theta
    from ose.distil import STATE_DIR, load_study, plan_runs, train_final, yardstick
    from ose.inputs import reopen
    from ose.train import TeacherMemo

    path = args.root / "finals.jsonl"
    stored = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    done = [d for d in stored if d.get("cap") == args.final_steps]  # runs of another cap are another benchmark
    have = {(d["seed"], d["key"]) for d in done}
    todo = [(seed, r) for seed in args.seeds for r in records if (seed, key(r)) not in have]
    if todo and args.stored:
        print(f"# --stored: {len(todo)} final run(s) not trained; the figures are from the {len(done)} stored")
    elif todo:
        meta, _, _ = load_study(base)
        inputs = reopen(base, meta)
        torch.set_num_threads(inputs.cfg.threads)
        cfg0, data0, state = inputs.cfg, inputs.data, base / STATE_DIR
        inputs.data = data0.with_validation(cfg0.seed)
        theta_of = lambda r: Theta(lr=r["lr"], momentum=r["momentum"], batch_size=r["batch_size"],  # noqa: E731
                                   **({"optimizer": r["optimizer"]} if "optimizer" in r else {}))
        t_run, _ = plan_runs(meta, {n: records[0][n] for n in NAMES}, theta_of(records[0]), args.final_steps)
        started = time.perf_counter()
        t = yardstick(inputs, t_run, theta_of(records[0]), state, 25, log=lambda *a: None, say=None)
        print(f"# T (teacher and yardstick): {t.summary()} ({time.perf_counter() - started:.0f} s)", flush=True)
        teacher = TeacherMemo(t.model)  # T answers each training batch once for all the candidates
        for n, (seed, r) in enumerate(todo, 1):
            xi, theta = {k: r[k] for k in NAMES}, theta_of(r)
            _, run = plan_runs(meta, xi, theta, args.final_steps)
            if seed != cfg0.seed:  # another seed's run is another run (its own state file)
                run["seed"] = seed
            inputs.cfg, inputs.data = dataclasses.replace(cfg0, seed=seed), data0.with_validation(seed)
            started = time.perf_counter()
            trained = train_final(inputs, xi, theta, run, state, 25, teacher=teacher)
            line = {"seed": seed, "key": key(r), "cap": args.final_steps, "error": trained.test.error,
                    "targets": trained.test.targets,
                    "steps": trained.steps, "best_step": trained.stop.best_step,
                    "seconds": round(time.perf_counter() - started, 1)}
            with path.open("a") as f:
                f.write(json.dumps(line) + "\n")
            done.append(line)
            print(f"# final {n}/{len(todo)}: seed {seed} {key(r)} test error {line['error']:.4f} "
                  f"({line['steps']} steps, {line['seconds']:.0f} s)", flush=True)
    out: dict[int, dict[str, float]] = {}
    for d in done:
        out.setdefault(d["seed"], {})[d["key"]] = d["error"]
    return out


def stored_targets(args) -> int:
    """The test part's targets the final runs of this cap were measured on (one test part for all)."""
    path = args.root / "finals.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    counts = {d["targets"] for d in lines if d.get("cap") == args.final_steps}
    if len(counts) != 1:
        raise SystemExit(f"{path}: final runs of cap {args.final_steps} measured on {len(counts)} test sizes")
    return counts.pop()


# --- the figures ------------------------------------------------------------------------------

# The per-candidate proxies a study stores (``--metric`` names the one ê is), as the table labels them.
FIELDS = {"error": "ê (error on B)", "loss": "cross-entropy on B", "train_loss": "training loss at the end",
          "train_loss_tail": "training loss, last quarter mean", "kl": "KL from T on B"}
# Variant studies: each its own exhaustive study with these extract options (s = the default's).
VARIANTS = {"steps2x": lambda s: {"steps": 2 * s}, "half": lambda s: {"steps": s // 2},
            "teacher": lambda s: {"steps": s, "teacher": "from"},
            "repeats2": lambda s: {"steps": s // 2, "repeats": 2}}


def proxies_of(suffix: str, records: list[dict]) -> dict[str, tuple[str, list[dict]]]:
    """Every proxy all of ``records`` hold (a study made before a field existed lacks it)."""
    return {label + suffix: (f, records) for f, label in FIELDS.items() if all(r.get(f) is not None for r in records)}


def value(r: dict, field: str) -> float:
    """A proxy's value; ``-name`` ranks by the count reversed (size as a ranker: the larger, the
    lower its error is expected to be, so that its ρ is positive where size ranks well)."""
    return -float(r[field[1:]]) if field.startswith("-") else float(r[field])


def rho_line(name: str, xs: list[float], ys: list[float], resamples: int) -> tuple[str, dict]:
    n = len(xs)
    rho = spearman(xs, ys)
    lo, hi = bootstrap_interval(lambda ix: spearman([xs[i] for i in ix], [ys[i] for i in ix]), n, resamples)
    return (f"  ρ({name}, final) = {rho:+.3f} [{lo:+.3f}, {hi:+.3f}]  n = {n}",
            {"proxy": name, "rho": rho, "interval": [lo, hi], "n": n})


def attenuation(rho: float, seeds: int) -> float:
    """The ρ a perfect proxy (each candidate's expected final error) reaches against the mean of
    ``seeds`` finals, from the seed-to-seed ρ (Spearman-Brown, then the correction for attenuation)."""
    rho = max(rho, 0.0)
    return math.sqrt(seeds * rho / (1 + (seeds - 1) * rho))


def mean_finals(args, final: dict[int, dict[str, float]]) -> tuple[list[int], dict[str, float]]:
    """(the seeds with final runs, each candidate's mean final error over them, where all have one)."""
    seeds = [s for s in args.seeds if s in final]
    keys = set.intersection(*(set(final[s]) for s in seeds))
    return seeds, {k: sum(final[s][k] for s in seeds) / len(seeds) for k in sorted(keys)}


def against_mean(args, proxies: dict, final: dict[int, dict[str, float]], ceiling: dict,
                 sizes: dict[str, float]) -> dict:
    """Every proxy against the mean of the seeds' finals, its difference from ê's ρ (paired: the same
    resamples of candidates), and the attenuation bounds the ceiling sets."""
    seeds, mean = mean_finals(args, final)
    rhos = (ceiling["rho"], *ceiling["interval"])
    levels = {"one_seed": 1, f"mean_of_{len(seeds)}": len(seeds)}
    bounds = {name: [attenuation(r, n) for r in rhos] for name, n in levels.items()}
    said = [f"{b[0]:.3f} [{b[1]:.3f}, {b[2]:.3f}]" for b in bounds.values()]
    print(f"# what the ceiling allows a perfect proxy (correction for attenuation): against one seed's finals "
          f"{said[0]}, against the mean of {len(seeds)} {said[1]}")
    print(f"# final = the mean of seeds {', '.join(map(str, seeds))}'s final errors; "
          f"Δ = ρ − ρ(ê) on the same resamples")
    base_field, base_rs = proxies[FIELDS["error"]]
    base = {key(r): value(r, base_field) for r in base_rs}
    rows = []
    for name, (field, rs) in proxies.items():
        rs = [r for r in rs if key(r) in mean and key(r) in base]
        xs, ys, es = [value(r, field) for r in rs], [mean[key(r)] for r in rs], [base[key(r)] for r in rs]
        line, row = rho_line(name, xs, ys, args.resamples)
        delta = spearman(xs, ys) - spearman(es, ys)
        dlo, dhi = bootstrap_interval(lambda ix: spearman([xs[i] for i in ix], [ys[i] for i in ix])
                                      - spearman([es[i] for i in ix], [ys[i] for i in ix]), len(xs), args.resamples)
        print(f"{line}   Δ = {delta:+.3f} [{dlo:+.3f}, {dhi:+.3f}]")
        rows.append({**row, "delta_vs_error": delta, "delta_interval": [dlo, dhi]})
    pairs = []
    for name, (field, rs) in proxies.items():
        if not field.startswith("-"):
            rs = [r for r in rs if key(r) in mean]
            line, row = pair_line(name, [value(r, field) for r in rs], [mean[key(r)] for r in rs],
                                  [sizes[key(r)] for r in rs], args.resamples)
            print(line)
            pairs.append(row)
    return {"rho_mean_final": rows, "pairs_mean_final": pairs, "attenuation": bounds}


def pairs_of(sizes: list[float]) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(sizes)) for j in range(i + 1, len(sizes))
            if max(sizes[i], sizes[j]) <= PAIR_RATIO * min(sizes[i], sizes[j])]


def pair_line(name: str, xs: list[float], ys: list[float], sizes: list[float], resamples: int) -> tuple[str, dict]:
    pairs = pairs_of(sizes)
    share = pair_agreement(xs, ys, pairs)

    def resampled(ix: list[int]) -> float:
        seen = sorted(set(ix))  # a pair needs two distinct candidates
        sub = pairs_of([sizes[i] for i in seen])
        return pair_agreement([xs[i] for i in seen], [ys[i] for i in seen], sub)

    lo, hi = bootstrap_interval(resampled, len(xs), resamples)
    return (f"  pair accuracy({name}) = {share:.3f} [{lo:.3f}, {hi:.3f}]  over {len(pairs)} pairs of p within "
            f"{PAIR_RATIO:g}×", {"proxy": name, "pair_accuracy": share, "interval": [lo, hi], "pairs": len(pairs)})


def draw(path: Path, panels: list[tuple[str, list[dict], str]], final: dict[str, float], what: str) -> None:
    """One panel per (title, records, field): the short run's proxy against the final error, by D."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for ax, (title, records, field) in zip(axes[0], panels):
        depths = sorted({r["D"] for r in records})
        cmap = plt.get_cmap("viridis", len(depths))
        for n, d in enumerate(depths):
            rs = [r for r in records if r["D"] == d and key(r) in final]
            ax.scatter([r[field] for r in rs], [final[key(r)] for r in rs], color=cmap(n), label=f"D = {d}", s=22)
        ax.set_xlabel(f"short run: {title}")
        ax.set_ylabel(f"final: {what}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, with ose's defaults filled in and the grid written to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="source", default="all-MiniLM-L6-v2")
    ap.add_argument("--data", help="labelled data (default: ose's embedded tweets)")
    ap.add_argument("--steps", type=int, help="s of the short run (default: 100, ose's default before issue 21, "
                    "which measured the new default, train-loss at s = 50, as the half variant)")
    ap.add_argument("--final-steps", type=int, help="the cap of each final run (default: ose distil's)")
    ap.add_argument("--seeds", default="0,1", help="seeds of the final runs; two or more give the ceiling")
    ap.add_argument("--variants", default="", help="comma-separated variant studies to add: steps2x (2s), "
                    "half (s/2), repeats2 (two seeds at s/2, ê their mean), teacher (distillation from T during the search, "
                    "which also stores KL from T)")
    ap.add_argument("--quick", action="store_true", help="a small grid (12 candidates) and short runs")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--stored", action="store_true", help="train nothing more: the figures from the final runs "
                    "stored so far (each figure says its n)")
    ap.add_argument("--figure", help="where to draw ê against the final error (PNG)")
    ap.add_argument("--out", default="benchmarks/runs/fidelity")
    args = ap.parse_args(argv)
    from ose.config import STEPS
    from ose.distil import STEPS as FINAL_STEPS

    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.steps = args.steps or (5 if args.quick else STEPS)
    args.final_steps = args.final_steps or (20 if args.quick else FINAL_STEPS)
    args.root = Path(args.out)
    args.root.mkdir(parents=True, exist_ok=True)
    (args.root / "space.toml").write_text(GRID.format(**(QUICK if args.quick else FULL)))
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    started = time.perf_counter()
    base = args.root / "study"
    records = study(args, base, steps=args.steps)
    print(f"# T = {args.source}, --task cls; {len(records)} candidates; short run s = {args.steps} "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    final = finals(args, base, records)
    first = final[args.seeds[0]]
    proxies = {**proxies_of("", records),
               "−p (larger, lower error)": ("-params_effective", records), "−i": ("-ops", records)}
    variants = {}
    for name in filter(None, args.variants.split(",")):
        rs = variants[name] = study(args, args.root / f"variant-{name}", **VARIANTS[name](args.steps))
        print(f"# variant {name}: {len(rs)} candidates ({time.perf_counter() - started:.0f} s so far)", flush=True)
        proxies.update(proxies_of(f", {name}", rs))
    report = {"source": args.source, "steps": args.steps, "final_steps": args.final_steps, "seeds": args.seeds,
              "rho": [], "pairs": [], "ceiling": None}
    print(f"# final = test error after the final run (seed {args.seeds[0]}); 95% bootstrap intervals over candidates")
    for name, (field, rs) in proxies.items():
        rs = [r for r in rs if key(r) in first]
        xs, ys = [value(r, field) for r in rs], [first[key(r)] for r in rs]
        line, row = rho_line(name, xs, ys, args.resamples)
        print(line)
        report["rho"].append(row)
    # The search and the seed-0 final run share a seed: with distillation during the search, the short
    # run is the final run's own beginning (same teacher, batches and head). A final run of another
    # seed shares nothing with it, so ρ against it is the honest one where the two differ.
    for seed in args.seeds[1:]:
        other = final.get(seed, {})
        print(f"# final = seed {seed}'s (independent of the search's seed {args.seeds[0]})")
        for name, (field, rs) in proxies.items():
            rs = [r for r in rs if key(r) in other]
            line, row = rho_line(name, [value(r, field) for r in rs], [other[key(r)] for r in rs], args.resamples)
            print(line)
            report.setdefault("rho_other_seeds", []).append({**row, "seed": seed})
    sizes = {key(r): r["params_effective"] for r in records}
    for name, (field, rs) in proxies.items():
        if field.startswith("-"):
            continue
        rs = [r for r in rs if key(r) in first]
        line, row = pair_line(name, [float(r[field]) for r in rs], [first[key(r)] for r in rs],
                              [sizes[key(r)] for r in rs], args.resamples)
        print(line)
        report["pairs"].append(row)
    if len(args.seeds) > 1 and args.seeds[1] in final:
        second = final[args.seeds[1]]
        both = sorted(set(first) & set(second))
        line, row = rho_line(f"final seed {args.seeds[1]}", [second[k] for k in both], [first[k] for k in both],
                             args.resamples)
        print("  ceiling: " + line.strip())
        report["ceiling"] = row
    if len(args.seeds) > 1 and report["ceiling"] is not None:
        report.update(against_mean(args, proxies, final, report["ceiling"], sizes))
    report["seconds"] = round(time.perf_counter() - started)
    print(f"# this run: {report['seconds']} s (studies and final runs already stored are reused)")
    if args.figure:  # ê as the search used it, and (with the half variant) ê as ose's default now takes it
        seeds, mean = mean_finals(args, final)
        panels = [(f"error rate on B, s = {args.steps}", records, "error")]
        if "half" in variants:
            panels.append((f"training loss, last quarter, s = {args.steps // 2} (the default)", variants["half"],
                           "train_loss_tail"))
        draw(Path(args.figure), panels, mean, f"test error after ose distil, mean of seeds {seeds}")
    (args.root / "fidelity.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
