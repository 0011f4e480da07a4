"""Where evaluations run: in-process, on local worker processes, or on a Ray cluster.

Every executor takes the same jobs (key, ξ, θ) and yields (key, ξ, θ, record) as each
finishes, in whatever order. Evaluations are seeded by the configuration alone, so every
executor produces the same records. The driver stays the only writer of the study store.

The driver prepares the study's shared context (Ξ, T, the encoded data, the teacher) once
and hands it to the workers: they never read the user's files, which a Ray node elsewhere
may not have. Workers are started before the data is prepared, so their start-up (a Python
interpreter, torch) overlaps the driver's. Jobs go out longest first, so that on N workers
the long evaluations do not end up alone at the tail. No more workers start than jobs can
run at once.

Failures are the same on every executor:
- an exception inside an evaluation is a failed record (``evaluate`` catches it); the search
  goes on;
- a worker that dies while evaluating (killed, crashed) loses only that evaluation: it runs
  again on a fresh worker, up to ``retries`` times, then is recorded as failed with the reason;
- a worker that dies while idle loses nothing: it is replaced, whatever ``retries`` says;
  only workers that keep dying before finishing anything stop the study (``ExecutorError``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from typing import Iterator

from .config import ConfigError, ExtractConfig, Theta
from .errors import ExecutorError
from .record import Record
from .registry import Registry

Job = tuple[str, dict, Theta]
START_FAILURES = 3  # consecutive deaths of a slot's workers before any evaluation: give up
READY_TIMEOUT = 300.0  # seconds for Ray to place and start every worker


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def failed_record(xi: dict, theta: Theta, space, message: str) -> dict:
    return Record.planned(space, xi, theta).failed(message).as_dict()


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
    threads = 1  # torch threads per evaluation

    def start(self, ctx) -> None:
        self.ctx = ctx
        self.space = ctx.space  # C counted as the task builds it: the counts of a worker-died record

    @abstractmethod
    def run(self, jobs: list[Job], on_step=None) -> Iterator[tuple[str, dict, Theta, dict]]:
        ...

    def pids(self) -> list[int]:
        """The worker processes' ids (none for in-process evaluation), for monitoring."""
        return []

    def close(self) -> None:
        return None


class LocalExecutor(Executor):
    """In-process, one evaluation at a time (the default)."""

    name = "local"

    def __init__(self, cfg: ExtractConfig):
        self.threads = cfg.resolved_threads()

    def run(self, jobs, on_step=None):
        from .evaluate import evaluate

        for key, xi, theta in jobs:
            yield key, xi, theta, evaluate(self.ctx, xi, theta, on_step(key) if on_step else None)


# --- worker processes ----------------------------------------------------------------------

def _worker(tasks, results) -> None:
    """A worker process: import torch, receive the shared context, evaluate jobs until told to stop.

    Results go back on this worker's own pipe: a worker killed mid-write can only break its
    own channel, never a lock that the other workers share.
    """
    from .evaluate import evaluate

    ctx = tasks.get()
    if ctx is None:
        return
    while True:
        job = tasks.get()
        if job is None:
            return
        key, xi, theta = job
        results.send((key, None))  # started: from now on a death costs this job an attempt
        results.send((key, evaluate(ctx, xi, theta)))


@contextmanager
def _sigint_ignored():
    """SIGINT ignored while a worker starts, which it inherits: Ctrl-C reaches every process of the
    terminal's group, and a worker would print its own KeyboardInterrupt traceback, importing torch
    or training, beside the driver's one line. The driver alone handles it, and stops the workers."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class _Slot:
    proc: object
    tasks: object        # driver → worker queue: the context, then jobs, then None
    results: object      # worker → driver pipe (the driver's end)
    job: str | None = None
    started: bool = False   # the worker said it began the job (before that, a death costs the job nothing)
    start_failures: int = 0


class ProcessExecutor(Executor):
    """N local worker processes (spawned), each with ``threads`` torch threads."""

    name = "processes"

    def __init__(self, cfg: ExtractConfig, space, workers: int, retries: int = 2):
        self.n, self.space, self.retries = workers, space, retries
        self.threads = cfg.threads or max(1, usable_cores() // self.n)
        self.ctx = None
        self.mp = mp.get_context("spawn")
        # Workers outlive one call to run: adaptive strategies call it once per round.
        self.slots: dict[int, _Slot] = {i: self._spawn() for i in range(self.n)}

    def start(self, ctx) -> None:
        self.ctx, self.space = worker_context(ctx, self.threads), ctx.space
        for slot in self.slots.values():
            slot.tasks.put(self.ctx)

    def _spawn(self, failures: int = 0) -> _Slot:
        tasks = self.mp.Queue()
        mine, theirs = self.mp.Pipe(duplex=False)
        proc = self.mp.Process(target=_worker, args=(tasks, theirs), daemon=True)
        with _sigint_ignored():
            proc.start()
        theirs.close()  # else the pipe never reports EOF when the worker dies
        if self.ctx is not None:
            tasks.put(self.ctx)
        return _Slot(proc, tasks, mine, start_failures=failures)

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.slots.values()]

    def run(self, jobs, on_step=None):
        pending = longest_first(jobs, self.space)
        attempts = {key: 0 for key, _, _ in jobs}
        by_key = {job[0]: job for job in jobs}
        while pending or any(s.job for s in self.slots.values()):
            for slot in self.slots.values():
                if slot.job is None and pending and slot.proc.is_alive():
                    job = pending.pop(0)
                    slot.job, slot.started = job[0], False
                    slot.tasks.put(job)
            ready = wait([s.results for s in self.slots.values()] + [s.proc.sentinel for s in self.slots.values()],
                         timeout=1.0)
            for i, slot in list(self.slots.items()):
                if slot.results in ready or not slot.proc.is_alive():
                    for key, record in self._receive(slot, attempts):
                        yield (*by_key[key], record)
                if not slot.proc.is_alive():
                    lost, started = self._replace(i)
                    if lost is not None and not started:
                        pending.insert(0, by_key[lost])
                    elif lost is not None:
                        yield from self._lost(by_key[lost], attempts, pending, f"exit code {slot.proc.exitcode}")

    @staticmethod
    def _receive(slot: _Slot, attempts: dict):
        """Every result waiting on the slot's pipe, even from a worker that has died since."""
        while slot.results.poll():
            try:
                key, record = slot.results.recv()
            except (EOFError, OSError):  # its end closed: the worker is gone, perhaps mid-message
                slot.proc.join(5)
                return
            if record is None:
                slot.started = True
                attempts[key] += 1
                continue
            slot.job, slot.start_failures = None, 0
            yield key, record

    def _replace(self, i: int) -> tuple[str | None, bool]:
        """A fresh worker in slot ``i``; returns the dead one's job key and whether it had begun it."""
        dead = self.slots[i]
        failures = dead.start_failures + (not dead.started)
        if failures >= START_FAILURES:
            raise ExecutorError(f"worker processes keep dying before finishing an evaluation (exit code "
                                f"{dead.proc.exitcode}); run with --executor local to see why")
        dead.results.close()
        dead.tasks.cancel_join_thread()  # a dead reader would block the feeder thread at exit
        dead.tasks.close()
        self.slots[i] = self._spawn(failures)
        return dead.job, dead.started

    def _lost(self, job: Job, attempts: dict, pending: list, reason: str):
        """A job whose worker died: run it again, or record it as failed after ``retries`` re-runs."""
        key, xi, th = job
        if attempts[key] > self.retries:
            yield key, xi, th, failed_record(xi, th, self.space,
                                             f"worker died ({reason}) on all {attempts[key]} attempts")
        else:
            pending.insert(0, job)

    def close(self) -> None:
        for slot in self.slots.values():
            if slot.job is not None:  # busy: the run was interrupted, and no one will read its result
                slot.proc.kill()
            elif slot.proc.is_alive():
                slot.tasks.put(None)
        deadline = time.time() + 5
        for slot in self.slots.values():
            slot.proc.join(max(0.1, deadline - time.time()))
            if slot.proc.is_alive():
                slot.proc.kill()
                slot.proc.join(1)
            slot.tasks.cancel_join_thread()
            slot.tasks.close()
            slot.results.close()
        self.slots.clear()


# --- Ray -----------------------------------------------------------------------------------

class RayExecutor(Executor):
    """One Ray actor per worker, each holding the shared context; a dead actor is replaced.

    With ``address`` it joins that cluster; otherwise it starts a local Ray on loopback for
    the run, sized to fit the workers, and stops it afterwards. The context goes into Ray's
    object store once. Workers that the cluster cannot place are refused up front, never
    waited for without end.
    """

    name = "ray"

    def __init__(self, cfg: ExtractConfig, space, workers: int | None, address: str | None = None,
                 gpus: float = 0.0, retries: int = 2, max_parallel: int | None = None,
                 connect_timeout: float = 15.0):
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
                n = workers or usable_cores()
                ray.init(num_cpus=n * (cfg.threads or 1), include_dashboard=False, log_to_driver=False)
                self.started = True
        try:
            self.n, self.threads = _fit(cfg, workers, ray.cluster_resources(), address, gpus, max_parallel)
        except ConfigError:
            self.close()
            raise
        self.actor_cls = ray.remote(num_cpus=self.threads, num_gpus=gpus, max_restarts=0)(_RayWorker)
        self.ctx_ref = None
        self.actors = {slot: self._actor() for slot in range(self.n)}  # they import torch meanwhile

    def _actor(self):
        actor = self.actor_cls.remote()
        if self.ctx_ref is not None:
            actor.setup.remote(self.ctx_ref)  # an actor runs its calls in order: before any job
        return actor

    def start(self, ctx) -> None:
        self.space = ctx.space  # C counted as the task builds it: the counts of a worker-died record
        self.ctx_ref = self.ray.put(worker_context(ctx, self.threads))
        ready = [actor.setup.remote(self.ctx_ref) for actor in self.actors.values()]
        done, _ = self.ray.wait(ready, num_returns=len(ready), timeout=READY_TIMEOUT)
        if len(done) < len(ready):
            raise ExecutorError(f"Ray started {len(done)} of {self.n} workers within {READY_TIMEOUT:g} s "
                                f"(each needs {self.threads} CPU); cluster resources: "
                                f"{self.ray.cluster_resources()}")

    def pids(self) -> list[int]:
        return self.ray.get([actor.pid.remote() for actor in self.actors.values()])

    def _alive(self, slot: int) -> bool:
        """Whether the actor answers: an idle one that died is replaced before it is given a job."""
        try:
            self.ray.get(self.actors[slot].pid.remote(), timeout=READY_TIMEOUT)
            return True
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError):
            self.actors[slot] = self._actor()
            return False

    def run(self, jobs, on_step=None):
        ray = self.ray
        pending = longest_first(jobs, self.space)
        attempts = {k: 0 for k, _, _ in jobs}
        inflight: dict = {}  # ObjectRef -> (slot, job)
        free = list(self.actors)
        while pending or inflight:
            while free and pending:
                slot = free.pop(0)
                if not self._alive(slot):
                    free.append(slot)
                    continue
                job = pending.pop(0)
                attempts[job[0]] += 1
                inflight[self.actors[slot].evaluate.remote(job[1], job[2])] = (slot, job)
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            if not ready:
                continue
            slot, job = inflight.pop(ready[0])
            free.append(slot)
            key, xi, th = job
            try:
                record = ray.get(ready[0])
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                self.actors[slot] = self._actor()
                if attempts[key] > self.retries:
                    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                    yield key, xi, th, failed_record(xi, th, self.space, f"worker died on all {attempts[key]} "
                                                                         f"attempts ({msg[:200]})")
                else:
                    pending.insert(0, job)
                continue
            yield key, xi, th, record

    def close(self) -> None:
        for actor in getattr(self, "actors", {}).values():
            self.ray.kill(actor)
        self.actors = {}
        if self.started:
            self.ray.shutdown()
            self.started = False


def _fit(cfg: ExtractConfig, workers: int | None, resources: dict, address: str | None, gpus: float,
         max_parallel: int | None = None):
    """(workers, threads each) that the cluster can place at once, or a one-line ConfigError."""
    cpus = int(resources.get("CPU", 0))
    n = workers or min(max(1, cpus // (cfg.threads or 1)), max_parallel or cpus)
    threads = cfg.threads or max(1, cpus // n)
    where = f"the Ray cluster at {address}" if address else "the local Ray"
    if n * threads > cpus:
        raise ConfigError(f"{n} workers × {threads} threads need {n * threads} CPUs; {where} has {cpus}")
    if gpus and n * gpus > resources.get("GPU", 0):
        raise ConfigError(f"{n} workers × {gpus:g} GPUs need {n * gpus:g} GPUs; {where} has "
                          f"{resources.get('GPU', 0):g}")
    return n, threads


class _RayWorker:
    def __init__(self):
        from . import evaluate  # noqa: F401  (import torch now, while the driver prepares the data)

        self.ctx = None

    def setup(self, ctx) -> None:
        self.ctx = ctx

    def pid(self) -> int:
        return os.getpid()

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


def _workers(cfg: ExtractConfig, max_parallel: int, log) -> int | None:
    """The workers to start: as asked (default: the usable cores, or the cluster's say), never
    more than the evaluations that can run at once."""
    requested = cfg.workers or (None if cfg.address else usable_cores())
    if requested is None:
        return None
    if requested > max_parallel:
        log(f"note: starting {max_parallel} workers, not {requested}: at most {max_parallel} evaluations run at once")
    return min(requested, max_parallel)


EXECUTORS = Registry("executor", {
    "local": lambda cfg, space, max_parallel, log: LocalExecutor(cfg),
    "processes": lambda cfg, space, max_parallel, log: ProcessExecutor(
        cfg, space, _workers(cfg, max_parallel, log), cfg.retries),
    "ray": lambda cfg, space, max_parallel, log: RayExecutor(
        cfg, space, _workers(cfg, max_parallel, log), cfg.address, cfg.gpus_per_eval, cfg.retries, max_parallel),
})


def make_executor(cfg: ExtractConfig, space, max_parallel: int, log=print) -> Executor:
    """The configured executor, its workers starting; ``start(ctx)`` hands them the study.

    No more workers start than ``max_parallel``, the most evaluations that can run at once.
    """
    ex = EXECUTORS.get(cfg.executor)(cfg, space, max_parallel, log)
    if ex.name != "local" and not cfg.address and ex.n * ex.threads > usable_cores():
        log(f"warning: {ex.n} workers × {ex.threads} threads on {usable_cores()} cores: the cores are "
            f"oversubscribed, so each evaluation runs slower and every worker holds its own memory")
    return ex
