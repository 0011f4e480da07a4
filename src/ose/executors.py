"""Where evaluations run: in-process, on local worker processes, or on a Ray cluster.

Every executor takes the same jobs (key, ξ, θ) and yields (key, ξ, θ, record) as each
finishes, in whatever order. Evaluations are seeded by the configuration alone, so every
executor produces the same records. The driver stays the only writer of the study store.

The driver prepares the study's shared context (Ξ, T, the encoded data, the teacher) once
and hands it to the workers: they never read the user's files, which a Ray node elsewhere
may not have. Workers are started before the data is prepared, so their start-up (a Python
interpreter, torch) overlaps the driver's. Jobs go out longest first, so that on N workers
the long evaluations do not end up alone at the tail.

A worker that dies mid-evaluation (killed, crashed) loses only that evaluation: it is run
again on a fresh worker, up to ``retries`` times, then reported as failed with the reason.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Iterator

from .config import ConfigError, ExtractConfig
from .train import Theta

Job = tuple[str, dict, Theta]


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def failed_record(xi: dict, theta: Theta, space, message: str) -> dict:
    from .evaluate import base_record

    return {**base_record(space, xi, theta), "status": "failed", "message": message, "seconds": 0.0}


def worker_context(ctx, threads: int):
    """The shared context as a worker sees it: ``threads`` torch threads per evaluation."""
    return replace(ctx, cfg=replace(ctx.cfg, threads=threads))


def longest_first(jobs: list[Job], space) -> list[Job]:
    """Jobs by decreasing estimated cost, i(ξ) × batch size (training time grows with both)."""
    return sorted(jobs, key=lambda job: -space.cost(job[1]).ops * job[2].batch_size)


class Executor(ABC):
    """Runs evaluations: ``start(ctx)`` once, then ``run`` yields (key, ξ, θ, record) as each
    one finishes; ``close`` stops the workers."""

    name: str
    n = 1  # evaluations at once

    def start(self, ctx) -> None:
        self.ctx = ctx

    @abstractmethod
    def run(self, jobs: list[Job], on_step=None) -> Iterator[tuple[str, dict, Theta, dict]]:
        ...

    def close(self) -> None:
        return None


class LocalExecutor(Executor):
    """In-process, one evaluation at a time (the default)."""

    name = "local"

    def run(self, jobs, on_step=None):
        from .evaluate import evaluate

        for key, xi, theta in jobs:
            yield key, xi, theta, evaluate(self.ctx, xi, theta, on_step(key) if on_step else None)


# --- worker processes ----------------------------------------------------------------------

def _worker(tasks, results) -> None:
    """A worker process: import torch, receive the shared context, evaluate jobs until told to stop."""
    from .evaluate import evaluate

    ctx = tasks.get()
    if ctx is None:
        return
    while True:
        job = tasks.get()
        if job is None:
            return
        key, xi, theta = job
        results.put((key, evaluate(ctx, xi, theta)))


class ProcessExecutor(Executor):
    """N local worker processes (spawned), each with ``threads`` torch threads."""

    name = "processes"

    def __init__(self, cfg: ExtractConfig, space, workers: int | None = None, retries: int = 2):
        self.n = workers or usable_cores()
        self.space = space
        self.retries = retries
        self.threads = cfg.threads or max(1, usable_cores() // self.n)
        self.ctx = None
        self.mp = mp.get_context("spawn")
        self.results = self.mp.Queue()
        self.workers: dict[int, tuple] = {}  # slot -> (process, task queue)
        for slot in range(self.n):  # workers outlive one call: adaptive strategies call often
            self._start(slot)

    def start(self, ctx) -> None:
        self.ctx = worker_context(ctx, self.threads)
        for _, tasks in self.workers.values():
            tasks.put(self.ctx)

    def _start(self, slot: int) -> None:
        tasks = self.mp.Queue()
        proc = self.mp.Process(target=_worker, args=(tasks, self.results), daemon=True)
        proc.start()
        if self.ctx is not None:
            tasks.put(self.ctx)
        self.workers[slot] = (proc, tasks)

    def run(self, jobs, on_step=None):
        pending = longest_first(jobs, self.space)
        by_key = {k: (k, xi, th) for k, xi, th in jobs}
        attempts = {k: 0 for k in by_key}
        busy: dict[int, str] = {}  # slot -> key
        idle_deaths = 0
        while pending or busy:
            for slot in self.workers:
                if slot not in busy and pending:
                    key = pending.pop(0)[0]
                    busy[slot] = key
                    attempts[key] += 1
                    self.workers[slot][1].put(by_key[key])
            try:
                key, record = self.results.get(timeout=0.2)
            except queue.Empty:
                key = None
            if key is not None:
                slot = next(s for s, k in busy.items() if k == key)
                del busy[slot]
                yield (*by_key[key], record)
                continue
            for slot, (proc, _) in list(self.workers.items()):
                if proc.is_alive():
                    continue
                key = busy.pop(slot, None)
                idle_deaths = idle_deaths + 1 if key is None else 0
                if idle_deaths > self.retries:
                    raise RuntimeError(f"worker processes keep dying before any evaluation "
                                       f"(exit code {proc.exitcode}); run with --executor local to see why")
                self._start(slot)
                if key is None:
                    continue
                if attempts[key] > self.retries:
                    _, xi, th = by_key[key]
                    yield key, xi, th, failed_record(
                        xi, th, self.space, f"worker died (exit code {proc.exitcode}) on all {attempts[key]} attempts")
                else:
                    pending.insert(0, by_key[key])

    def close(self) -> None:
        for proc, tasks in self.workers.values():
            if proc.is_alive():
                tasks.put(None)
        deadline = time.time() + 10
        for proc, _ in self.workers.values():
            proc.join(max(0.1, deadline - time.time()))
            if proc.is_alive():
                proc.kill()
        self.workers.clear()


# --- Ray -----------------------------------------------------------------------------------

class RayExecutor(Executor):
    """One Ray actor per worker, each holding the shared context; a dead actor is replaced.

    With ``address`` it joins that cluster; otherwise it starts a local Ray on loopback for
    the run and stops it afterwards. The context goes into Ray's object store once.
    """

    name = "ray"

    def __init__(self, cfg: ExtractConfig, space, workers: int | None = None, address: str | None = None,
                 gpus: float = 0.0, retries: int = 2, connect_timeout: float = 15.0):
        try:
            import ray
        except ImportError:
            raise ConfigError("executor ray needs Ray: pip install 'ose[ray]'") from None
        self.ray, self.space, self.retries = ray, space, retries
        self.started = False
        if not ray.is_initialized():
            if address:
                _check_reachable(address, connect_timeout)
                ray.init(address=address, log_to_driver=False)
            else:
                # Keep a local Ray on 127.0.0.1 (by default it binds to the host's address).
                os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
                ray.init(num_cpus=workers or usable_cores(), include_dashboard=False, log_to_driver=False)
                self.started = True
        total = int(ray.cluster_resources().get("CPU", 1))
        self.n = workers or total
        self.threads = cfg.threads or max(1, total // self.n)
        self.actor_cls = ray.remote(num_cpus=self.threads, num_gpus=gpus, max_restarts=0)(_RayWorker)
        self.ctx_ref = None
        self.actors = {slot: self._actor() for slot in range(self.n)}  # they import torch meanwhile

    def _actor(self):
        actor = self.actor_cls.remote()
        if self.ctx_ref is not None:
            actor.setup.remote(self.ctx_ref)  # an actor runs its calls in order: before any job
        return actor

    def start(self, ctx) -> None:
        self.ctx_ref = self.ray.put(worker_context(ctx, self.threads))
        for actor in self.actors.values():
            actor.setup.remote(self.ctx_ref)

    def run(self, jobs, on_step=None):
        ray = self.ray
        pending = longest_first(jobs, self.space)
        attempts = {k: 0 for k, _, _ in jobs}
        inflight: dict = {}  # ObjectRef -> (slot, job)
        free = list(self.actors)
        while pending or inflight:
            while free and pending:
                slot, job = free.pop(0), pending.pop(0)
                attempts[job[0]] += 1
                inflight[self.actors[slot].evaluate.remote(job[1], job[2])] = (slot, job)
            ready, _ = ray.wait(list(inflight), num_returns=1)
            slot, job = inflight.pop(ready[0])
            key, xi, th = job
            try:
                record = ray.get(ready[0])
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                self.actors[slot] = self._actor()
                free.append(slot)
                if attempts[key] > self.retries:
                    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                    yield key, xi, th, failed_record(xi, th, self.space, f"worker died on all {attempts[key]} "
                                                                         f"attempts ({msg[:200]})")
                else:
                    pending.insert(0, job)
                continue
            free.append(slot)
            yield key, xi, th, record

    def close(self) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor)
        self.actors.clear()
        if self.started:
            self.ray.shutdown()


class _RayWorker:
    def __init__(self):
        from . import evaluate  # noqa: F401  (import torch now, while the driver prepares the data)

        self.ctx = None

    def setup(self, ctx) -> None:
        self.ctx = ctx

    def evaluate(self, xi: dict, theta: Theta) -> dict:
        from .evaluate import evaluate

        return evaluate(self.ctx, xi, theta)


def _check_reachable(address: str, timeout: float) -> None:
    """Fail fast (one line) when a Ray head's GCS port does not answer."""
    import socket

    host, _, port = address.replace("ray://", "").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=min(timeout, 5.0)):
            return
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot reach a Ray cluster at {address} ({e})") from None


def make_executor(cfg: ExtractConfig, space) -> Executor:
    """The configured executor, its workers starting; ``start(ctx)`` hands them the study."""
    if cfg.executor == "local":
        return LocalExecutor()
    if cfg.executor == "processes":
        return ProcessExecutor(cfg, space, cfg.workers, cfg.retries)
    return RayExecutor(cfg, space, cfg.workers, cfg.address, cfg.gpus_per_eval, cfg.retries)
