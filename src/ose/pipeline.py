"""``ose.extract``: Algorithm 1 end to end, from a search space and data to ξ*.

1. p(ξ), i(ξ) for every ξ ∈ Ξ in closed form; 2. sort by the layers B's p, then i (or by
the whole network's: ``sort``); 3. one representative per ε-interval; 4. for each θ ∈ Θ and
each representative, train ≤ s steps, ê on B, W against T; 5. ξ* = argmax W, with the
table and the Pareto front of (p, i, ê).
Baseline strategies (exhaustive, random, TPE, NSGA-II) replace step 3 on the same budget.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import budgets, estimate, grid
from . import study as studies
from .config import ConfigError, ExtractConfig, Theta, from_dict, given_options, idle_options, read_config
from .context import Context, make_context, needs_latency
from .data import EMBEDDED, describe_source
from .executors import Executor, make_executor
from .inputs import resolve_task, resolved_paths
from .progress import SearchProgress, StepBars, interactive, run_note
from .report import counts, outputs
from .report import results as report
from .space import Candidate, SearchSpace, arch_key, load_space, space_from_dict
from .store import Store
from .strategies import Strategy, make_strategy
from .tasks import get_task, tasks_of


@dataclass
class ExtractResult:
    """What an extraction returns: the pick ξ* and the evidence."""

    config: ExtractConfig
    out: Path
    document: dict
    files: list[Path] = field(default_factory=list)

    @property
    def best(self) -> dict | None:
        return self.document["best"]

    @property
    def evaluations(self) -> list[dict]:
        return self.document["evaluations"]

    @property
    def pareto(self) -> list[dict]:
        return self.document["pareto"]


def plan(cfg: ExtractConfig, space: SearchSpace, timings: dict | None = None) -> Strategy:
    """The search over Ξ, or over the part of it within the budgets (cut before the ε-intervals);
    a latency budget applies once ``timings`` are measured."""
    candidates = budgets.feasible(grid.table(space, cfg.sort), budgets.from_config(cfg), space.max_cost, timings)
    if cfg.budget is not None and cfg.budget > len(candidates):
        raise ConfigError(f"budget {cfg.budget} exceeds |Ξ| = {len(candidates)}")
    name = strategy_name(cfg)
    try:
        return make_strategy(name, candidates, cfg.epsilon, cfg.budget, cfg.representative, cfg.seed)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def strategy_name(cfg: ExtractConfig) -> str:
    """The strategy that runs: ``--objective cost`` bisects Ξ in cost order in place of the FPTAS,
    whose intervals answer W's question, not "the cheapest that keeps F"; other strategies are kept
    and the pick is the cheapest of what they trained."""
    if cfg.strategy == "bisect" and cfg.objective != "cost":
        raise ConfigError("strategy bisect looks for the cheapest candidate that keeps a share of T's accuracy: "
                          "use it with --objective cost --keep F")
    return "bisect" if cfg.objective == "cost" and cfg.strategy == "fptas" else cfg.strategy


def bound_line(cfg: ExtractConfig, space: SearchSpace, strategy: Strategy) -> str:
    n = len(strategy.candidates)
    which = f"⌈|Ξ|/ε⌉ = {strategy.budget}" if strategy.name == "fptas" else (
        f"bisect (--objective cost: Ξ by i then p, assuming ê does not rise with the cost): at most "
        f"⌈log₂|Ξ|⌉ + 1 = {strategy.budget}" if strategy.name == "bisect" else f"{strategy.name}: {strategy.budget}")
    repeats = f" (× r = {cfg.repeats} seeds, ê their mean)" if cfg.repeats > 1 else ""
    return (f"|Ξ| = {n}, |Θ| = {len(cfg.theta)}, ε = {cfg.epsilon}, s = {cfg.steps}{repeats}: "
            f"{which} candidates × |Θ| = {strategy.budget * len(cfg.theta)} trainings (T = {space.maximum_point})")


SMALL_TEST = 300  # below this many test targets a final accuracy is uncertain by more than ±6 points


def parts_line(ctx: Context) -> str:
    """Where the numbers come from: B (the search selects on it) and the test part (nobody does)."""
    data, unit = ctx.data, ctx.task.target_unit
    test = data.test
    own = " (--test-data)" if ctx.cfg.test_data else ""
    where = f"{test.rows:,} {data.row_unit}{own}" if test is not None else "none"
    return (f"B: {data.heldout.rows:,} {data.row_unit} ({data.heldout.labels.numel():,} {unit}), what the search "
            f"selects on; test part: {where}, what the final numbers (ose distil) are measured on")


def small_test_warning(ctx: Context) -> str | None:
    n = ctx.data.test.labels.numel() if ctx.data.test is not None else 0
    if n >= SMALL_TEST:
        return None
    cure = "use more data, a larger --heldout-fraction, fewer --eval-batches, or --test-data FILE"
    if n == 0:
        return f"warning: no held-out rows are left for a test part after B; ose distil will refuse: {cure}"
    return (f"warning: the test part holds only {n:,} {ctx.task.target_unit}: a final accuracy measured on it is "
            f"uncertain by up to ±{1.96 * (0.25 / n) ** 0.5:.2f} (95%); {cure}")


def abnc_warning(space: SearchSpace, strategy: Strategy) -> str | None:
    """Only the FPTAS's approximation ratio rests on ABⁿC; the other strategies promise none."""
    abnc = space.abnc()
    if strategy.name != "fptas" or abnc.holds:
        return None
    return counts.abnc_note(abnc)


# A study's format: 2 cuts its held-out part into B and a test part from disjoint texts, and counts
# C as the head its task builds. Studies without one (made before) resume and distil as they were.
FORMAT = 2


def settings_document(cfg: ExtractConfig, ctx: Context, strategy: Strategy, source=None, legacy: bool = False) -> dict:
    from .version import __version__

    origin = {"init": "inherit" if ctx.inherited else "scratch"}
    if source is not None:
        origin["source"] = source.identity()
    if not legacy:
        origin.update(format=FORMAT, inputs=resolved_paths(cfg, source))
    return {"config": cfg.as_dict(), "space": ctx.space.to_dict(), "data": ctx.data_identity, **origin,
            "error_floor": ctx.error_floor,  # the least ê W divided by (docs/SEARCH.md, "W when ê = 0")
            "bound": {"space_size": len(strategy.candidates), "thetas": len(cfg.theta), "epsilon": cfg.epsilon,
                      "steps": cfg.steps, "candidates": strategy.budget, "strategy": strategy.name},
            "device": ctx.cfg.device, "precision": ctx.cfg.precision,
            "threads": ctx.cfg.threads, "ose_version": __version__,
            "speed": {"kind": cfg.speed, **({"batch_size": cfg.latency_batch, "T_seconds": ctx.latency["T"]}
                                             if ctx.latency else {})}}


def maximum_point_document(space: SearchSpace, ctx: Context | None = None) -> dict:
    """T's counts; with its own head for the task (``ctx.t_as_given``), also its ê on B as given."""
    c = space.max_cost.as_dict()
    doc = {"architecture": dict(space.maximum_point), **{k: v for k, v in c.items() if k != "parts"}}
    if ctx is not None and ctx.t_as_given:
        doc["as_given"] = t_as_given(ctx)
    return doc


def t_as_given(ctx: Context) -> dict:
    """T as the checkpoint has it (no training) on B: the error and loss the candidates start below."""
    from .train import measure

    m = measure(ctx.build(dict(ctx.space.maximum_point)), ctx.family, ctx.task, ctx.data.heldout, ctx.cfg)
    lo, hi = m.interval()
    return {"error": m.error, "loss": m.loss, "accuracy_interval_95": [lo, hi], "targets": m.targets}


def job_key(xi: dict, theta: Theta) -> str:
    return f"{arch_key(xi)}|{theta.key()}"


def _check_out(out: Path, new_study: bool = False) -> dict | None:
    """The identity of the study already in ``out``, if any; an unusable study file is refused now,
    not after the slow data preparation (with ``new_study``, it is set aside when the study opens)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: output path exists and is not a directory")
    studies.check_writable(out)
    studies.check_free(out)
    return studies.stored_meta(out, new_study)[0]


def _check_foreign(out: Path) -> None:
    """A study's folder is ose's (it holds ``study.db``): results, report and figures are written
    over. A folder without one that holds anything else is the user's, and nothing in it is replaced."""
    from .latency import LATENCY_FILE

    if not out.is_dir() or (out / studies.STUDY_FILE).exists():
        return
    # ose's own: the lock, a latency table, the file another ose process is creating its study in
    # (``.study.db.PID.*.tmp``: that process holds the lock, and open_study names it), and the study
    # itself with SQLite's side files, which that process may have moved into place since the check above
    theirs = sorted(p.name for p in out.iterdir() if p.name not in (studies.LOCK_FILE, LATENCY_FILE)
                    and not p.name.startswith((f".{studies.STUDY_FILE}.", studies.STUDY_FILE)))
    if theirs:
        shown = ", ".join(theirs[:3]) + (", …" if len(theirs) > 3 else "")
        raise ConfigError(f"--out {out} holds no study ({studies.STUDY_FILE}) but other files ({shown}), which ose "
                          f"would not replace; use another --out or an empty folder")


def resumes_legacy(stored: dict | None, cfg: ExtractConfig) -> bool:
    """Whether this run resumes a study made before ``FORMAT`` (same configuration): it then keeps
    that study's space, counts and B, so that its stored evaluations and the new ones agree."""
    if stored is None or stored["settings"].get("format"):
        return False
    old, new = ({"settings": {"config": c}} for c in (stored["settings"]["config"], cfg.as_dict()))
    return not studies.differences(old, new)


def max_parallel(cfg: ExtractConfig, strategy: Strategy) -> int:
    """The most evaluations that can run at once: the whole plan, or one round of an adaptive strategy."""
    per_round = cfg.ask_batch if strategy.adaptive else strategy.budget
    return per_round * len(cfg.theta)


DEFAULT_SPACE = "bert-tiny"


def load(cfg: ExtractConfig):
    """(configuration, search space, pretrained source or None): Ξ and T from the space file or
    preset, or from ``--from``'s checkpoint (a space file then narrows its default grid)."""
    from .pretrained import check_inheritable, load_source, space_for

    cfg = cfg.with_defaults()
    overrides = {"seq_len": cfg.seq_len} if cfg.seq_len else {}
    source = load_source(cfg.source) if cfg.source else None
    if source is not None:
        space = space_for(source, cfg.space, **overrides)
    else:
        if cfg.space is None:
            cfg = dataclasses.replace(cfg, space=DEFAULT_SPACE)
        space = load_space(cfg.space)
        space = space.with_settings(**overrides) if overrides else space
    cfg = resolve_task(cfg, space.family, source)
    get_task(cfg.task).check_seq_len(space.settings.seq_len)  # before the output directory is looked at
    if source is not None and cfg.inherits:
        check_inheritable(space)
    return cfg, space, source


def reference_job(ctx: Context, thetas: list[Theta]) -> tuple | None:
    """T's own short run under the first θ, when candidates inherit its weights: how far from T
    each candidate's ê is, and what T reaches in s steps."""
    if ctx.inherited is None:
        return None
    xi, theta = dict(ctx.space.maximum_point), thetas[0]
    return f"{outputs.REFERENCE}{job_key(xi, theta)}", xi, theta


def run(cfg: ExtractConfig, log=print, progress: bool = True, new_study: bool = False) -> ExtractResult:
    """Validate everything, then train; nothing is written before the inputs are known good."""
    cfg.validate()
    out = Path(cfg.out)
    task_given = cfg.task is not None
    cfg, space, source = load(cfg)
    for note in space.notes:
        log(note)
    strategy = plan(cfg, space)
    stored = _check_out(out, new_study)
    legacy = not new_study and resumes_legacy(stored, cfg)
    if legacy:  # its own space, as stored (the counts its evaluations were scored with)
        space = space_from_dict(stored["settings"]["space"], source=str(out / "study.db"))
    # Workers start now and import torch while the data is prepared, unless latency may be
    # measured then (they would disturb it); a bad Ray address fails before anything is written.
    executor, lock = None, None
    try:
        if not needs_latency(cfg):
            executor = make_executor(cfg, space, max_parallel(cfg, strategy), log)
        ctx = make_context(cfg, space, source, layout="legacy" if legacy else "texts", count_built_head=not legacy)
        if cfg.objective == "cost" and ctx.inherited is None:
            raise ConfigError("--objective cost keeps a share of T's accuracy, and T from scratch has none to keep: "
                              "extract from a pretrained checkpoint (--from MODEL)")
        strategy = plan(cfg, ctx.space, ctx.timings)  # C counted as built can reorder Ξ under --sort total
        executor = executor or make_executor(cfg, ctx.space, max_parallel(cfg, strategy), log)
        # A static strategy's whole plan is known now; Θ is the outer loop, as in the paper.
        planned = None if strategy.adaptive else strategy.ask(strategy.budget)
        reference = reference_job(ctx, cfg.theta)
        jobs = [job_key(c.xi, th) for th in cfg.theta for c in planned] if planned is not None else None
        if jobs is not None and reference:
            jobs.insert(0, reference[0])
        meta = {"settings": settings_document(cfg, ctx, strategy, source, legacy),
                "maximum_point": maximum_point_document(ctx.space, ctx), "jobs": jobs,
                "total": strategy.budget * len(cfg.theta) + bool(reference), "created_at": time.time()}
        executor.start(ctx)
        _check_foreign(out)  # after every input is known good: bad input names its own problem first
        store, lock = studies.open_study(out, meta, new_study, log)
        if cfg.retry_failed:
            retry_failed(store, jobs, log)
        before = (store.note("run") or {}).get("threads")  # threads per evaluation of the run before
        threads_note = (f"note: this study's evaluations so far ran with {before} thread(s) each, these with "
                        f"{executor.threads}: their losses may differ in the last digits (docs/STUDIES.md, "
                        f"\"Threads and the numbers\")"
                        if store.records() and before is not None and before != executor.threads else None)
    except BaseException:
        if executor is not None:
            executor.close()
        raise
    log(f"ose extract: {ctx.space.name}, task {cfg.task}, data {ctx.data_identity['source']} "
        f"({ctx.data_identity['examples']} examples), device {ctx.cfg.device}/{ctx.cfg.precision}")
    if files_note := describe_source(cfg.data):
        log(files_note)
    log(parts_line(ctx))
    if (not task_given and ctx.cfg.data not in (None, EMBEDDED) and ctx.data.labelled_examples
            and ctx.task.name != "cls" and "cls" in tasks_of(ctx.family)):
        log(f"note: the data has labels ({ctx.data.labelled_examples:,} examples), but the task is {ctx.task.name}, the "
            f"default for {source.spec if source else 'this space'}; --task cls trains a classifier on them")
    small = small_test_warning(ctx)
    if small:
        log(small)
    chosen = budgets.from_config(cfg)
    if chosen:
        log(budgets.summary(grid.table(ctx.space, cfg.sort), strategy.candidates, chosen, ctx.space.max_cost,
                            ctx.timings))
    log(bound_line(cfg, ctx.space, strategy))
    if threads_note:
        log(threads_note)
    warning = abnc_warning(ctx.space, strategy)
    if warning:
        log(warning)
    if source is not None:
        log(f"T from {source.spec} ({source.path}); candidates "
            + ("inherit its weights, sliced to their shape" if ctx.inherited else "start from scratch"))
        if ctx.t_as_given:
            log(f"T is {source.spec} as given, with its own {ctx.task.head} head: candidates inherit it, sliced")
        elif ctx.inherited and ctx.data.head_unused:
            log(f"note: {source.spec}'s {ctx.task.head} head is not used ({ctx.data.head_unused}); each candidate's "
                f"starts fresh")
        elif ctx.inherited:
            log(f"note: {source.spec} has no {ctx.task.head} head; each candidate's starts fresh")
    if strategy.adaptive and cfg.ask_batch * len(cfg.theta) < executor.n:
        log(f"note: {strategy.name} asks {cfg.ask_batch} candidate(s) per round, so at most "
            f"{cfg.ask_batch * len(cfg.theta)} of {executor.n} workers train at once; --ask-batch {executor.n} "
            f"keeps them all busy")
    try:
        if ctx.timings is not None and not cfg.latency_file:
            from . import latency

            if not (out / latency.LATENCY_FILE).exists():
                latency.save(out / latency.LATENCY_FILE, ctx.timings["doc"])
        runner = _Runner(executor, store, _progress(cfg, ctx, strategy, planned, executor, store, progress, log,
                                                    reference), cfg.steps * cfg.repeats, progress)
        if reference:
            t_record = runner([reference])[reference[0]]
            if cfg.objective == "cost":
                strategy.limit = cost_limit(cfg.keep, meta["maximum_point"], t_record)
                log(f"--objective cost --keep {cfg.keep:g}: the cheapest candidate whose ê on B is at most "
                    f"{strategy.limit:.4f} (T's accuracy {1 - t_error(meta['maximum_point'], t_record):.4f} × "
                    f"{cfg.keep:g})")
        drive(strategy, cfg.theta, runner, planned, cfg.ask_batch)
        if strategy.adaptive and len(store.keys()) < meta["total"]:  # it ended before its plan's count
            store.set_note(studies.ENDED, {"total": len(store.keys())})
        runner.close()
        doc, files = outputs.write_report(out, store)
    finally:
        executor.close()
        store.close()
        lock.release()
    log(report.summary(doc))
    if doc["best"]:
        log(report.pick_line(doc))
    log(f"results: {out / 'results.json'}   report: {out / 'report.html'}")
    return ExtractResult(cfg, out, doc, files)


def t_error(maximum_point: dict, reference: dict | None) -> float:
    """T's ê on B, what ``--keep`` is a share of: T as given where it has the task's head, else its
    own short run (as ``ose distil --keep`` orders candidates by)."""
    given = maximum_point.get("as_given")
    if given is not None:
        return given["error"]
    if not reference or reference.get("status") != "ok":
        raise ConfigError("--objective cost needs T's own ê on B, and T's short run did not finish "
                          f"({(reference or {}).get('message', 'no run')}); --retry-failed runs it again")
    return reference["error"]


def cost_limit(keep: float, maximum_point: dict, reference: dict | None) -> float:
    """The most ê a candidate may have on B and keep ``keep`` of T's accuracy: 1 − F·(1 − ê_T)."""
    return 1 - keep * (1 - t_error(maximum_point, reference))


def retry_failed(store: Store, jobs: list[str] | None, log) -> None:
    """``--retry-failed``: the study's failed evaluations (of this plan's jobs; all of them for an
    adaptive strategy) are retired, whole, so that they run again."""
    failed = [r["key"] for r in store.records() if r.get("status") == "failed" and (jobs is None or r["key"] in jobs)]
    retired = [key for key in failed if store.retire(key)]
    if retired:
        log(f"retrying {len(retired)} failed evaluation(s); the failed records are kept in the study "
            f"(its retired evaluations)")


def drive(strategy: Strategy, thetas: list[Theta], run_jobs, planned: list[Candidate] | None = None,
          ask_batch: int = 1) -> None:
    """Ask the strategy, evaluate each candidate under every θ ∈ Θ, tell it the records.

    ``run_jobs(jobs)`` evaluates (key, ξ, θ) jobs and returns {key: record}. A static
    strategy's plan is one batch; an adaptive one is asked ``ask_batch`` candidates per round
    and told their records before the next. The rounds are fixed by the configuration, never
    by the executor or the order in which evaluations finish, so every executor (and a
    resumed study) asks the same candidates.
    """
    batches = [planned] if planned is not None else iter(lambda: strategy.ask(ask_batch), [])
    for cands in batches:
        jobs = [(job_key(c.xi, th), c.xi, th) for th in thetas for c in cands]
        records = run_jobs(jobs)
        for c in cands:
            strategy.tell(c, [records[job_key(c.xi, th)] for th in thetas])


def _progress(cfg: ExtractConfig, ctx: Context, strategy: Strategy, planned: list[Candidate] | None,
              executor: Executor, store: Store, enabled: bool, log, reference: tuple | None) -> SearchProgress:
    """The search's progress, with an up-front estimate from timed steps (see ``estimate``)."""
    stored = store.records()
    total = strategy.budget * len(cfg.theta) + bool(reference)
    if stored:
        log(f"resuming: {len(stored)} of {total} evaluations already stored")
    if planned is not None:
        jobs = [(job_key(c.xi, th), c.xi, th) for th in cfg.theta for c in planned]
    else:  # an adaptive strategy may ask any candidate: time the extremes of Ξ
        jobs = [(job_key(c.xi, th), c.xi, th) for th in cfg.theta for c in strategy.candidates]
    if reference:
        jobs.insert(0, reference)
    work = {key: estimate.work(ctx.space, xi, th) for key, xi, th in jobs}
    mean_work = sum(work.values()) / len(work)
    left = [job for job in jobs if job[0] not in {r["key"] for r in stored}]
    cost = estimate.calibrate(ctx, left, executor.threads) if left and len(stored) < total else None
    steps = cfg.steps * cfg.repeats
    bar = SearchProgress(total, stored, work if planned is not None else None, mean_work, steps, executor.n,
                         cost, executor.name, enabled, log)
    store.set_note("run", run_note(bar.work, mean_work, steps, executor.n, cost, executor.threads))
    if cost is not None:
        log(f"estimate: {estimate.duration(bar.eta())} for {total - len(stored)} evaluation(s) on {executor.n} "
            f"worker(s) × {executor.threads} thread(s), from one timed step of the cheapest and of the dearest "
            f"candidate; it is refined as evaluations finish")
    return bar


class _Runner:
    """Runs jobs on the executor, skipping those already stored; stores each as it finishes."""

    def __init__(self, executor: Executor, store: Store, bar: SearchProgress, steps: int, progress: bool):
        self.executor, self.store, self.bar = executor, store, bar
        self.stored = {r["key"]: r for r in store.records()}
        self.step_bars = StepBars(steps, progress and interactive())

    def __call__(self, jobs: list) -> dict[str, dict]:
        todo = [j for j in jobs if j[0] not in self.stored]
        for key, xi, theta, record in self.executor.run(todo, on_step=self.step_bars):
            self.store.add(key, record, xi, theta.as_dict())
            self.stored[key] = record
            self.step_bars.close()
            self.bar.finished(key, record)
        return {key: self.stored[key] for key, _, _ in jobs}

    def close(self) -> None:
        self.step_bars.close()
        self.bar.close()


def extract(config: ExtractConfig | str | Path | None = None, *, log=print, progress: bool = True,
            new_study: bool = False, **options) -> ExtractResult:
    """Run an extraction: ``ose.extract(space="bert-tiny", epsilon=3, steps=100, out="runs/x")``.

    ``config`` is an ExtractConfig or a TOML file; keyword options override it.
    """
    if isinstance(config, ExtractConfig):
        cfg = from_dict(options, config)
        given = given_options(cfg, [k for k, v in options.items() if v is not None])
    else:
        cfg, given = read_config(config, options)
    if not math.isfinite(cfg.kd_alpha) or not math.isfinite(cfg.kd_beta):
        raise ConfigError("kd_alpha and kd_beta must be finite numbers")
    for line in idle_options(cfg, given):  # on stderr, beside the errors: the run goes on as without them
        print(line, file=sys.stderr)
    return run(cfg, log=log, progress=progress, new_study=new_study)
