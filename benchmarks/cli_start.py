"""Start-up time of the commands that need no training: ``ose count`` and ``ose status``.

    python benchmarks/cli_start.py [--repeats 15]

Neither imports torch: counting is closed-form arithmetic and status reads the study store.
Each command runs ``--repeats`` times interleaved with ``python -c pass`` (the interpreter's
own start-up, the floor), and the script prints the medians and their ratios. ``status``
reads a study of 300 stored evaluations built here with the store API (no training).
Targets: count under 0.5 s, status under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ose.space import load_space
from ose.store import open_store


def make_study(out: Path) -> None:
    """A bert-paper study with every architecture stored, as a finished run would leave it."""
    space = load_space("bert-paper")
    cands = space.candidates()
    meta = {"settings": {"space": space.to_dict(), "config": {"steps": 100}}, "total": len(cands),
            "jobs": [c.key for c in cands], "created_at": time.time(), "maximum_point": {}}
    store = open_store(out, meta=meta)
    for c in cands:
        cost = {k: v for k, v in c.cost.as_dict().items() if k != "parts"}
        store.add(c.key, {**c.xi, **cost, "lr": 0.05, "momentum": 0.9, "batch_size": 32, "error": 0.9,
                          "w": 0.5, "seconds": 10.0, "steps": 100, "status": "ok", "message": ""}, c.xi, {})
    store.close()


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        make_study(Path(d))
        commands = {"python -c pass": [sys.executable, "-c", "pass"],
                    "ose count": [sys.executable, "-m", "ose", "count", "D=4", "A=8", "H=1024", "I=768",
                                  "--vs", "D=24", "A=16", "H=1024", "I=4096"],
                    "ose status": [sys.executable, "-m", "ose", "status", d]}
        times = {name: [] for name in commands}
        for _ in range(args.repeats):  # interleaved: machine noise hits every command alike
            for name, cmd in commands.items():
                times[name].append(timed(cmd))
    floor = statistics.median(times["python -c pass"])
    for name, ts in times.items():
        med = statistics.median(ts)
        target = {"ose count": 0.5, "ose status": 1.0}.get(name)
        verdict = f"  target < {target} s: {'met' if med < target else 'MISSED'}" if target else ""
        print(f"{name:>15}: median {med:.3f} s over {len(ts)} runs = {med / floor:5.1f}× python -c pass{verdict}")


if __name__ == "__main__":
    main()
