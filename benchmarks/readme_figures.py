"""The README's figures for its main command, made again: run it, read what it wrote, print them
with the commit they came from.

    python benchmarks/readme_figures.py                     # the README's command, in a temporary folder
    python benchmarks/readme_figures.py --out runs/figures  # kept; a second run reuses the study and
                                                            # the distil state, and reprints the figures

It runs ``ose extract --from all-MiniLM-L6-v2 --task cls --objective accuracy --max-ops 5%
--epsilon 2`` (s and ê at their defaults with inherited weights: 50 steps, the training loss) then
``ose distil --steps 150 --keep 0.97`` as the README does (each as its own process, timed, with its
peak memory), and prints the objective and budget, how many candidates fit and were trained, the
pick and its ê with its interval and the runner-up, the margin and the candidates it ties within
ê's noise, the test accuracies of the pick and T with their 95% intervals and n, the verified floor
and the CPU speed-ups. Every number quoted in the README's set-up section comes from this output;
paste it with the commit it names.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXTRACT = ["--from", "all-MiniLM-L6-v2", "--task", "cls", "--objective", "accuracy", "--max-ops", "5%",
           "--epsilon", "2"]
KEEP = "0.97"


def run(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(["ose", *args, "--quiet"], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"ose {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return time.perf_counter() - start


def commit() -> str:
    def git(*a):
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if git("status", "--porcelain")
                                                   else "")


def figures(out: Path, seconds: dict, memory_mb: float, distil_steps: int) -> str:
    doc = json.loads((out / "results.json").read_text())
    card = json.loads((out / "model" / "ose.json").read_text())
    names = list(doc["maximum_point"]["architecture"])
    pick = doc["best"]  # the study's own pick (W settled, ties broken by its rule), not a re-sort here
    margin = doc.get("margin") or {}
    second = margin.get("runner_up")
    config = doc["settings"]["config"]
    budgets = ", ".join(f"--{k.replace('_', '-')} {config[k]}" for k in ("max_params", "max_ops", "max_latency")
                        if config.get(k))
    trained = [r for r in doc["evaluations"] if r["status"] == "ok"]

    def arch(r):
        return "⟨" + ", ".join(f"{k}={r[k]}" for k in names) + "⟩"

    t_doc, n_b = doc["maximum_point"], doc["settings"]["data"]["heldout_targets"]
    m, t, test = card["model"], card["T"], card["test"]
    lat = card["latency_seconds"]
    lines = [
        f"main command at commit {commit()}: `ose extract {' '.join(EXTRACT)} --out OUT && ose distil OUT "
        f"--steps {distil_steps} --keep {KEEP}`",
        f"time: extract {seconds['extract']:.0f} s, distil {seconds['distil']:.0f} s; peak memory {memory_mb:,.0f} MB",
        f"objective {config['objective']}, budgets {budgets or 'none'}: {len(trained)} candidate(s) trained",
        f"pick {arch(pick)}: W {pick['w']:.4g}, ê ({config.get('metric')}) {pick['error']:.4f} "
        f"[{pick['error_interval_95'][0]:.4f}, {pick['error_interval_95'][1]:.4f}] (B: {n_b:,} targets), "
        f"p/T {pick['params'] / t_doc['params']:.3f}, i/T {pick['ops'] / t_doc['ops']:.4f}",
    ]
    sample = "the last quarter's training steps" if config.get("metric") == "train-loss" else "B"
    if second:
        lines.append(f"runner-up {arch(second)}: W {second['w']:.4g}, ê {second['error']:.4f}; the pick's "
                     f"{'W' if config['objective'] == 'w' else 'ê'} is the better in {margin['p_higher']:.0%} of "
                     f"{margin['resamples']:,} paired resamples of {sample}")
    if margin.get("ties"):
        lines.append(f"ties within the noise of {sample}: "
                     + ", ".join(f"{arch(r)} ({r['p_higher']:.0%})" for r in margin["ties"]))
    ref = t_doc.get("reference")
    if ref and ref.get("status") == "ok":
        lines.append(f"T's own ê after {ref['steps']} steps: {ref['error']:.4f}")
    lines += [
        f"test part: {test['rows']:,} {test['row_unit']} ({test['what']})",
        f"test accuracy: pick {m['accuracy']:.3f} [{m['interval_95'][0]:.3f}, {m['interval_95'][1]:.3f}], "
        f"T ({card.get('teacher') or 'T'}) {t['accuracy']:.3f} [{t['interval_95'][0]:.3f}, {t['interval_95'][1]:.3f}], "
        f"ratio {m['accuracy'] / t['accuracy']:.3f}",
        "trained: pick {} steps (best at {}), T {}".format(
            card["training"]["model"]["steps"], card["training"]["model"]["best_step"],
            "as given" if card["training"]["T"].get("as_given") else
            f"{card['training']['T']['steps']} steps (best at {card['training']['T']['best_step']})"),
        *([f"--keep {card['keep']['floor']}: verified {card['keep']['verified']}, ratio {card['keep']['ratio']:.3f}"]
          if card.get("keep") else []),
        "CPU speed-up over T: " + ", ".join(f"{lat['T'][b] / lat['model'][b]:.1f}× at batch {b}" for b in lat["model"]),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="where the study goes (default: a temporary folder)")
    parser.add_argument("--distil-steps", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "demo"
        seconds = {"extract": run(["extract", *EXTRACT, "--out", str(out)]),
                   "distil": run(["distil", str(out), "--steps", str(args.distil_steps), "--keep", KEEP])}
        memory = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(figures(out, seconds, memory, args.distil_steps))


if __name__ == "__main__":
    main()
