"""One evaluation of Algorithm 1, step 4: train candidate ξ under θ, measure ê on B, score W.

An evaluation depends only on (configuration, ξ, θ, seed): the initialisation and the
batch order are seeded the same way for every candidate, so any executor, in any order,
gets the same numbers. The study's shared context is prepared once (``context.py``); it builds
the candidate (``inputs.StudyInputs.build``).
"""

from __future__ import annotations

import time

import torch

from ._faults import evaluation_fault
from .config import Theta
from .context import Context
from .costs import w_coefficient
from .record import Record
from .space import arch_key
from .train import CandidateFailed, train_repeated


def evaluate(ctx: Context, xi: dict, theta: Theta, progress=None) -> dict:
    """Train ξ under θ for at most s steps; the record stored for this evaluation (flat dict).

    Whatever goes wrong inside one candidate (divergence, no memory, an exception) makes a
    failed record with the reason, on every executor alike; the search goes on.
    """
    record = Record.planned(ctx.space, xi, theta)
    start = time.perf_counter()
    torch.set_num_threads(ctx.cfg.threads)
    try:
        evaluation_fault(arch_key(xi))
        result = train_repeated(lambda seed: ctx.build(xi, seed), ctx.family, ctx.task, ctx.data, theta, ctx.cfg,
                                ctx.teacher, progress, around_start=ctx.inherited is not None)
    except CandidateFailed as e:
        return record.failed(str(e), time.perf_counter() - start).as_dict()
    except (torch.OutOfMemoryError, MemoryError) as e:
        return record.failed(f"out of memory: {_first_line(e)}", time.perf_counter() - start).as_dict()
    except Exception as e:  # noqa: BLE001  (one candidate's error must not end a long study)
        return record.failed(f"{type(e).__name__}: {_first_line(e)}", time.perf_counter() - start).as_dict()
    record.error, record.loss, record.train_loss = result.error, result.loss, result.train_loss
    record.train_loss_tail, record.kl = result.train_loss_tail, result.kl
    record.steps, record.seconds = result.steps, result.seconds
    if result.on_b is not None:
        record.extra["on_b"] = result.on_b
    record.w = _w(ctx, xi, record)
    return record.as_dict()


def _w(ctx: Context, xi: dict, record: Record) -> float:
    top, cost = ctx.space.max_cost, record.counts
    if ctx.latency is None:
        return w_coefficient(cost["params"], cost["ops"], record.error, top.params, top.ops, floor=ctx.error_floor)
    # --speed latency: measured seconds stand in for the operation count
    record.latency = ctx.latency["by_arch"][arch_key(xi)]
    return w_coefficient(cost["params"], record.latency, record.error, top.params, ctx.latency["T"], strict=False,
                         floor=ctx.error_floor)


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [""])[0][:300]
