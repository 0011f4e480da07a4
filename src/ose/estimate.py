"""How long a study takes: an estimate before training starts, and an ETA while it runs.

One SGD step costs a fixed time (dominant for tiny networks) plus a time that grows with its
work, batch size × i(ξ). Before training, one timed step of the cheapest and one of the
dearest job fit seconds per step = a + b · work (``calibrate``); a job of s steps is then
predicted to take s · (a + b · work). While the study runs, the measured seconds of the
finished evaluations rescale those predictions, so the ETA is the predicted time of the jobs
left, not their number times the mean so far: on ``bert-paper`` the dearest candidate costs
about a thousand times the cheapest, and jobs go out dearest first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class StepCost:
    """Seconds of one training step: ``fixed`` + ``per_work`` × batch size × i(ξ)."""

    fixed: float
    per_work: float

    def job_seconds(self, work: float, steps: int) -> float:
        return steps * (self.fixed + self.per_work * work)


def work(space, xi: dict, theta) -> float:
    """The work of one training step of ξ under θ: batch size × i(ξ)."""
    return float(theta.batch_size) * space.cost(xi).ops


def record_work(record: dict) -> float:
    return float(record["batch_size"]) * record["ops"]


def remaining_seconds(done: list[tuple[float, float]], left: list[float], steps: int, parallel: int,
                      cost: StepCost | None = None) -> float | None:
    """Wall seconds until the jobs of work ``left`` finish on ``parallel`` workers.

    ``done`` holds (work, measured seconds) of finished evaluations; without a calibrated
    ``cost``, time is taken as proportional to work. None when nothing can be said yet.
    """
    def predict(w: float) -> float:
        return cost.job_seconds(w, steps) if cost else w

    if not left:
        return 0.0
    if done:
        predicted = sum(predict(w) for w, _ in done)
        scale = sum(s for _, s in done) / predicted if predicted > 0 else 1.0
    elif cost is None:
        return None
    else:
        scale = 1.0
    times = [scale * predict(w) for w in left]
    # Perfect packing at best, and never less than the longest job left.
    return max(sum(times) / max(parallel, 1), max(times))


def calibrate(ctx, jobs: list, threads: int) -> StepCost | None:
    """Time one training step of the cheapest and of the dearest job (after a warm-up step);
    None if a timing run fails (the real run will record why)."""
    ranked = sorted(jobs, key=lambda job: work(ctx.space, job[1], job[2]))
    points = [(work(ctx.space, xi, th), _step_seconds(ctx, xi, th, threads))
              for _, xi, th in {id(j): j for j in (ranked[0], ranked[-1])}.values()]
    if any(t is None for _, t in points):
        return None
    (w0, t0), (w1, t1) = points[0], points[-1]
    if w1 <= w0:
        return StepCost(0.0, t0 / w0 if w0 else 0.0)
    per_work = max((t1 - t0) / (w1 - w0), 0.0)
    return StepCost(max(t0 - per_work * w0, 0.0), per_work)


class _Enough(Exception):
    """Raised from the progress callback: the timed step is done, skip the rest of the run."""


def _step_seconds(ctx, xi: dict, theta, threads: int) -> float | None:
    import torch

    from .train import train

    ticks = []

    def tick(step, loss):
        ticks.append(time.perf_counter())
        if step == 2:
            raise _Enough

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    # fork_rng: the timing run must leave no trace in the random streams of the real runs.
    with torch.random.fork_rng(devices=[]):
        try:
            train(ctx.build(xi), ctx.family, ctx.task, ctx.data, theta, ctx.cfg, ctx.teacher,
                  tick, around_start=ctx.inherited is not None)
        except _Enough:
            pass
        except Exception:  # noqa: BLE001  (a candidate that fails here fails in its real run too)
            return None
        finally:
            torch.set_num_threads(previous)
    return ticks[1] - ticks[0] if len(ticks) > 1 else 0.0


def duration(seconds: float | None) -> str:
    """``1h02m03s``, ``4m05s``, or ``unknown``."""
    if seconds is None:
        return "unknown"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
