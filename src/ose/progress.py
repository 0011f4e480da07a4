"""What a running study shows: progress bars on a terminal, one line per evaluation in a log.

On a terminal, a bar for the search (with an ETA weighted by each job's work, see
``estimate``) and one for the steps of the candidate training in-process. When stderr is not
a terminal (a log file, a pipe, CI), bars would write a line per refresh; instead each
finished evaluation logs one line with the ETA.
"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

from .estimate import StepCost, duration, record_work, remaining_seconds


def interactive() -> bool:
    return sys.stderr.isatty()


class StepBars:
    """One progress bar per in-process evaluation (workers report only when done)."""

    def __init__(self, steps: int, enabled: bool):
        self.steps, self.enabled, self.bar = steps, enabled, None

    def __call__(self, key: str):
        self.close()
        if not self.enabled:
            return None
        self.bar = tqdm(total=self.steps, desc=key.split("|")[0], unit="step", leave=False, file=sys.stderr)

        def tick(step, loss, bar=self.bar):
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        return tick

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SearchProgress:
    """Counts finished evaluations and says how long the rest will take.

    ``work`` maps the key of each planned job to its work (None for an adaptive strategy,
    whose jobs are asked as it goes: each job left then counts as ``mean_work``).
    """

    def __init__(self, total: int, stored: list[dict], work: dict[str, float] | None, mean_work: float,
                 steps: int, parallel: int, cost: StepCost | None, name: str, enabled: bool, log):
        self.total, self.work, self.mean_work = total, work, mean_work
        self.steps, self.parallel, self.cost, self.log = steps, parallel, cost, log
        self.done_keys = {r["key"] for r in stored}
        self.done: list[tuple[float, float]] = []  # this run's (work, seconds): what this machine does now
        self.bar = None
        self.lines = enabled and not interactive()
        if enabled and interactive():
            self.bar = tqdm(total=total, initial=len(stored), desc=f"search ({name})", unit="eval", file=sys.stderr,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
            self.bar.set_postfix_str(self._eta_text(), refresh=True)

    def eta(self) -> float | None:
        if self.work is not None:
            left = [w for k, w in self.work.items() if k not in self.done_keys]
        else:
            left = [self.mean_work] * (self.total - len(self.done_keys))
        return remaining_seconds(self.done, left, self.steps, self.parallel, self.cost)

    def _eta_text(self) -> str:
        return f"ETA {duration(self.eta())}"

    def finished(self, key: str, record: dict) -> None:
        self.done_keys.add(key)
        if record.get("status") == "ok":
            self.done.append((record_work(record), record["seconds"]))
        if self.bar is not None:
            self.bar.set_postfix_str(self._eta_text(), refresh=False)
            self.bar.update(1)
        elif self.lines:
            self.log(f"[{len(self.done_keys)}/{self.total}] {key}: {_outcome(record)}; {self._eta_text()}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _outcome(record: dict) -> str:
    if record.get("status") != "ok":
        return f"failed ({record.get('message')})"
    return f"ê={record['error']:.4f} W={float(record['w']):.4g} in {record['seconds']:.1f} s"


def run_note(work: dict[str, float] | None, mean_work: float, steps: int, parallel: int,
             cost: StepCost | None, threads: int | None = None) -> dict:
    """What ``ose status`` needs to estimate this run's remaining time from the store alone."""
    import os

    return {"pid": os.getpid(), "started_at": time.time(), "work": work, "mean_work": mean_work,
            "steps": steps, "parallel": parallel, "threads": threads,
            "step_cost": None if cost is None else {"fixed": cost.fixed, "per_work": cost.per_work}}
