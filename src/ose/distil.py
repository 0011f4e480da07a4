"""``ose distil RUN_DIR``: the pick of a study, trained into a model you can use, and measured.

Its own stage: it reopens the study's inputs (``inputs.reopen``: data, tokenizer, T, checked
against what the study recorded), never the search's extras. The chosen architecture ξ* (T's
weights sliced to it when the study inherited them) trains with distillation from T: the
checkpoint as given where it carries its own head for the task, else T fine-tuned on the task
(the teacher, and the yardstick the pick is read against); a study's ``--teacher DIR`` teaches
instead, T staying the yardstick. Each training here is a final training: no weight box, at most
``steps`` steps, stopped once accuracy on a validation part carved from the training data stops
improving, keeping the weights of its best measurement. The pick and T are then measured on the study's test part (held-out rows that neither the
search nor this training selected on), with 95% intervals, and timed side by side on the CPU;
``export`` writes the Hugging Face model directory.

State lives in ``RUN_DIR/.distil/``, outside the exported folder: one file per training run
(``train.Checkpoint``), saved every ``save_every`` steps, so a killed run continues from its
last saved step and ends with what an uninterrupted run would. A finished run's file is its
result: T's fine-tune is trained once per study and reused by every later ``ose distil``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import Theta
from .errors import ConfigError, DataError, StoreError
from .inputs import StudyInputs, reopen
from .store import STUDY_FILE, open_store
from .study import StudyLock, check_free, check_writable, expected_total
from .train import CandidateFailed, Checkpoint, EarlyStop, Measured, differs, fit, measure

STATE_DIR = ".distil"
STEPS = 300        # the cap of each final training
PATIENCE = 3       # validation measurements without improvement before a run stops
MEASURES = 10      # validation measurements over a run that reaches the cap (every steps/MEASURES steps),
MIN_EVERY = 25     # but at least this many steps apart: closer measurements differ mostly by the noise of
                   # the last few batches, and would stop a fine-tune that is still rising


@dataclass
class Trained:
    """One final training run: its model, how it ended, and its answers on the test part."""

    model: object
    run: dict
    steps: int                 # steps trained
    stop: EarlyStop | None     # None: not trained here (T as given)
    test: Measured
    reused: bool = False       # an earlier ose distil of the study trained it; its saved result was used

    def summary(self) -> str:
        """How the run ended, in words: its steps, why it stopped, its test accuracy."""
        lo, hi = self.test.interval()
        measured = f"test accuracy {self.test.accuracy:.4f} [{lo:.4f}, {hi:.4f}] over {self.test.targets:,} targets"
        if self.stop is None:
            return f"as given, not trained here: {measured}"
        why = "validation accuracy stopped improving" if self.steps < self.run["steps"] else "reached the cap"
        return (f"{'trained earlier, reused: ' if self.reused else ''}{self.steps} steps ({why}; best at step "
                f"{self.stop.best_step}): {measured}")

    def record(self) -> dict:
        """What the card states of the run: where it stopped and why, its validation record."""
        if self.stop is None:
            return {"as_given": True, "steps": 0}
        cap, history = self.run["steps"], self.stop.history
        out = {"steps_cap": cap, "steps": self.steps, "best_step": self.stop.best_step,
               "stopped": "validation accuracy stopped improving" if self.steps < cap else "the cap",
               "validation": history}
        if self.steps >= cap and len(history) >= 2:
            half = [a for s, a in history if s > cap // 2] or [history[-1][1]]
            first = [a for s, a in history if s <= cap // 2] or [history[0][1]]
            out["still_rising"] = max(half) - max(first)  # how far from a plateau: the last half's best over the first's
        return out


def load_study(run_dir: Path, partial: bool = False) -> tuple[dict, dict, str | None]:
    """(the study's identity, its pick, how far an unfinished study got) or a one-line StoreError.
    An unfinished study's best so far is not the search's answer: it is refused unless ``partial``."""
    from .report.outputs import read_document

    if not (run_dir / STUDY_FILE).is_file():
        raise StoreError(f"{run_dir}: no study here (no {STUDY_FILE}); run ose extract first")
    store = open_store(run_dir, readonly=True)
    try:
        meta, stored = store.meta(), store.records()
        planned = expected_total(meta, store) if meta else 0
    finally:
        store.close()
    # The pick the report and results.json name: W settled (the floor on ê), ties in the study's order.
    pick = read_document(run_dir)["best"] if meta else None
    if pick is None:
        raise StoreError(f"{run_dir}: the study has no finished evaluation to distil")
    unfinished = None
    total = len(set(meta["jobs"])) if meta.get("jobs") else planned  # a job listed twice runs once
    if len({r["key"] for r in stored}) < total:
        unfinished = f"{len(stored)} of {total} evaluations stored"
        if not partial:
            raise StoreError(f"{run_dir}: the study is unfinished ({unfinished}); finish it with "
                             f"`{resume_command(meta, run_dir)}`, or distil its best so far with --partial")
    return meta, pick, unfinished


def choose(run_dir: Path, meta: dict, pick: dict, chosen: str | None) -> tuple[dict, bool]:
    """(the record to distil, whether it is another than the search's pick): ``chosen`` is None (the
    pick), a rank in the summary's order by W (``3``), or an architecture (``D=2,A=6,H=192,I=192``)
    with a stored, finished evaluation; a one-line ConfigError otherwise."""
    from .report.outputs import read_document
    from .strategies.selection import finished

    if chosen is None:
        return pick, False
    names = list(meta["settings"]["space"]["parameters"])
    done = sorted(finished(read_document(run_dir)["evaluations"]), key=lambda r: -float(r["w"]))
    text = str(chosen).strip()
    if text.isdigit():
        rank = int(text)
        if not 1 <= rank <= len(done):
            raise ConfigError(f"--pick {text}: the study has {len(done)} finished evaluation(s), ranked 1 to "
                              f"{len(done)} by W")
        record = done[rank - 1]
    else:
        xi = {}
        for part in text.split(","):
            key, sep, value = part.strip().partition("=")
            if not sep or key not in names or not value.strip().lstrip("-").isdigit():
                raise ConfigError(f"--pick expects a rank or {','.join(f'{n}=N' for n in names)}, got {text!r}")
            xi[key] = int(value)
        if set(xi) != set(names):
            raise ConfigError(f"--pick {text}: name every one of {', '.join(names)}")
        matches = [r for r in done if all(r[n] == xi[n] for n in names)]
        if not matches:
            raise ConfigError(f"--pick {text}: the study has no finished evaluation of this architecture (ose report "
                              f"lists them)")
        record = matches[0]  # its best θ: done is ordered by W
    return record, any(record.get(k) != pick.get(k) for k in (*names, "lr", "momentum", "batch_size", "optimizer"))


def resume_command(meta: dict, run_dir: Path) -> str:
    """The ``ose extract`` command that resumes the study: its options as given (the study compares
    them as typed), where a relative path is read from the directory it ran in."""
    from .config import ExtractConfig, from_dict

    cfg = from_dict(meta["settings"]["config"], ExtractConfig())
    relative = [v for v in (cfg.data, cfg.tokenizer, cfg.test_data, cfg.space, cfg.teacher, cfg.latency_file)
                if v and not Path(v).is_absolute() and not v.startswith("embedded:") and not Path(v).exists()]
    where = " (run it from the directory the study ran in: it names relative paths)" if relative else ""
    return dataclasses.replace(cfg, out=str(run_dir)).command() + where


def _tag(run: dict) -> str:
    return hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:12]


def train_final(inputs: StudyInputs, xi: dict, theta: Theta, run: dict, state: Path, save_every: int,
                teacher=None, log=None) -> Trained:
    """ξ trained (distilled from ``teacher`` when given) until validation accuracy stops improving,
    at most ``run["steps"]`` steps; resumed from, or reused as, its saved state under ``state``."""
    cfg = inputs.cfg
    model = inputs.build(xi)
    torch.manual_seed(cfg.seed)  # dropout's stream, the same for every run of this phase
    every = run["every"]

    def validation_accuracy() -> float:
        return measure(model, inputs.family, inputs.task, inputs.data.validation, cfg).accuracy

    stop = EarlyStop(validation_accuracy, model, every, PATIENCE)
    progress = _progress(run["phase"], run["steps"], stop, log)
    try:
        fitted = fit(model, inputs.family, inputs.task, inputs.data, theta, cfg, run["steps"], teacher=teacher,
                     stop=stop, progress=progress,
                     checkpoint=Checkpoint(_state_file(state, run), run, save_every))
    except CandidateFailed as e:  # the final training has no weight box: a θ can diverge here
        raise ConfigError(f"distil: the {run['phase']} run failed: {e} (θ {json.dumps(theta.as_dict())}); the "
                          f"study's pick was trained with it for {inputs.cfg.steps} steps only") from None
    model.eval()
    return Trained(model, run, fitted.steps, stop, measure(model, inputs.family, inputs.task, inputs.data.test, cfg),
                   fitted.reused)


def _progress(phase: str, steps: int, stop: EarlyStop, log):
    """A line every tenth of a run, with its latest validation accuracy."""
    if log is None:
        return None
    every = max(1, steps // 10)

    def report(step: int, loss: float) -> None:
        if step % every == 0 or step == steps:
            seen = f", validation accuracy {stop.history[-1][1]:.4f}" if stop.history else ""
            log(f"  {phase}: step {step}/{steps}, loss {loss:.3f}{seen}")
    return report


def check_target(out: Path, run: dict, run_dir: Path, meta: dict, force: bool = False) -> None:
    """Refuse to write the model over what it must not replace: T's checkpoint, the study, a folder
    holding files ose did not write or another export (those two with ``force``: overwritten)."""
    from .export import FACTS

    check_writable(out)
    settings = meta["settings"]
    source = (settings.get("inputs") or {}).get("source") or (settings.get("source") or {}).get("path")
    for what, folder in (("T's checkpoint", source), ("the study's own folder", run_dir)):
        if folder and out.resolve() == Path(folder).resolve():
            raise ConfigError(f"--out {out} is {what}; use another --out")
    if force or not out.exists() or not any(out.iterdir()):
        return
    facts = out / FACTS
    if not facts.is_file():
        raise ConfigError(f"{out}: the folder holds files ose did not write; use another --out (or --force to "
                          f"write over them)")
    try:
        old = json.loads(facts.read_text()).get("run")
    except (OSError, ValueError):
        old = None
    if old != run:
        raise ConfigError(f"{out} holds another export ({differs(old, run)}); use another --out (or --force to "
                          f"replace it)")


def _teacher_path(meta: dict) -> str | None:
    """The ``--teacher DIR`` the study was given (its absolute path where recorded), or None."""
    from .config import TEACHER_FROM

    settings = meta["settings"]
    named = settings["config"].get("teacher")
    if named in (None, TEACHER_FROM):
        return None
    return (settings.get("inputs") or {}).get("teacher") or named


def plan_runs(meta: dict, xi: dict, theta: Theta, steps: int) -> tuple[dict | None, dict]:
    """(T's run, the student's run): what identifies each training, and so its saved state.

    T is the yardstick the pick is read against: the checkpoint as given when it carries its own
    head for the task, else T's body with the task's head, fine-tuned (a final training like the
    pick's); None for a study from scratch. The student learns from ``--teacher DIR`` where the
    study was given one, else from T."""
    settings = meta["settings"]
    common = {"study": meta["created_at"], "theta": theta.as_dict(), "steps": steps, "patience": PATIENCE,
              "every": max(MIN_EVERY, steps // MEASURES)}
    t_run, teacher = None, _teacher_path(meta)
    if settings.get("init") == "inherit":
        t_run = {"phase": "T", "architecture": meta["maximum_point"]["architecture"]}
        if settings["data"].get("t_head") == "used":
            t_run["as_given"] = settings["source"]["weights_sha256"]
        else:
            t_run.update(common)
    student = {"phase": "student", "architecture": xi, **common}
    if teacher:
        student["teacher"] = teacher
    elif t_run:
        student["teacher"] = _tag(t_run)
    return t_run, student


def yardstick(inputs: StudyInputs, t_run: dict, theta: Theta, state: Path, save_every: int, log, say) -> Trained:
    """T as given (measured, untouched), or T fine-tuned on the task (trained once per study)."""
    xi = t_run["architecture"]
    if "as_given" in t_run:
        model = inputs.build(xi).eval()  # T sliced to its own shape: T's weights, its own head
        for p in model.parameters():
            p.requires_grad_(False)
        t = Trained(model, t_run, 0, None, measure(model, inputs.family, inputs.task, inputs.data.test, inputs.cfg))
        log(f"distil: T = {xi}, the checkpoint as given with its own head (the yardstick): {t.summary()}")
        return t
    resumed = " (continuing from its saved state)" if _state_file(state, t_run).is_file() else ""
    log(f"distil: T = {xi} fine-tuned on the task (the yardstick), at most {t_run['steps']} steps{resumed}")
    t = train_final(inputs, xi, theta, t_run, state, save_every, log=say)
    log(f"distil: T {t.summary()}")
    for p in t.model.parameters():
        p.requires_grad_(False)
    return t


def _state_file(state: Path, run: dict) -> Path:
    return state / f"{run['phase']}-{_tag(run)}.pt"


def distil(run_dir: str | Path, steps: int = STEPS, out: str | Path | None = None, save_every: int = 25,
           log=print, progress: bool = True, partial: bool = False, force: bool = False,
           restart: bool = False, pick: str | None = None, keep: float | None = None) -> DistilResult:
    """Distil the pick of the study in ``run_dir``, measure it on the test part, export it.

    ``partial``: distil an unfinished study's best so far; ``force``: write over a folder ose did not
    write, or another export; ``restart``: train again rather than continue from saved state. The
    study is held (its lock) while it runs: no extraction or other distil runs it meanwhile.
    ``pick``: another stored candidate than the search's pick (``choose``), exported by default to
    ``model-D2-A6-H192-I192/`` beside ``model/``."""
    run_dir = Path(run_dir)
    if steps < 1:
        raise ConfigError(f"--steps must be a positive integer, got {steps}")
    check_free(run_dir)  # a study an extraction (or another distil) runs now: the same line as extract's
    meta, search_pick, unfinished = load_study(run_dir, partial)
    pick, other = choose(run_dir, meta, search_pick, pick)
    xi = {k: pick[k] for k in meta["settings"]["space"]["parameters"]}
    out = Path(out) if out else run_dir / ("model-" + "-".join(f"{k}{v}" for k, v in xi.items()) if other else "model")
    theta = Theta(**{k: pick[k] for k in ("lr", "momentum", "batch_size")},
                  **({"optimizer": pick["optimizer"]} if "optimizer" in pick else {}))
    t_run, student_run = plan_runs(meta, xi, theta, steps)
    check_target(out, student_run, run_dir, meta, force)
    check_writable(run_dir / STATE_DIR)  # where each run's state is saved, before any training
    lock = StudyLock(run_dir)
    try:
        if restart:
            for run in (t_run, student_run):
                if run and "as_given" not in run:
                    _state_file(run_dir / STATE_DIR, run).unlink(missing_ok=True)
        return _distil(run_dir, meta, pick, xi, theta, t_run, student_run, out, save_every, log, progress,
                       unfinished, search_pick if other else None, keep)
    finally:
        lock.release()


def _distil(run_dir: Path, meta: dict, pick: dict, xi: dict, theta: Theta, t_run: dict | None, student_run: dict,
            out: Path, save_every: int, log, progress: bool, unfinished: str | None,
            search_pick: dict | None = None, keep: float | None = None) -> DistilResult:
    from . import export, latency
    from .context import load_teacher

    steps = student_run["steps"]
    inputs = reopen(run_dir, meta)
    if inputs.data.test is None:
        raise DataError(f"{run_dir}: the held-out part has no rows left for a test part after B; use more data, "
                        f"a larger heldout_fraction or fewer --eval-batches")
    inputs.data = inputs.data.with_validation(inputs.cfg.seed)
    torch.set_num_threads(inputs.cfg.threads)
    say = log if progress else None
    state = run_dir / STATE_DIR
    t = yardstick(inputs, t_run, theta, state, save_every, log, say) if t_run else None
    teacher, teacher_name = (t.model, "T as given" if "as_given" in t_run else "T fine-tuned") if t else (None, None)
    own = _teacher_path(meta)
    if own:  # the study's --teacher DIR teaches the pick too
        teacher = load_teacher(own, inputs.task, inputs.space.settings.vocab_size, inputs.data, inputs.cfg.device,
                               inputs.tokenizer)
        teacher_name = f"the teacher {Path(own).name}"
    resumed = " (continuing from its saved state)" if _state_file(state, student_run).is_file() else ""
    log(f"distil: training ξ* = {xi}, at most {steps} steps" + (f", distilled from {teacher_name}" if teacher else "")
        + resumed)
    student = train_final(inputs, xi, theta, student_run, state, save_every, teacher=teacher, log=say)
    log(f"distil: ξ* {student.summary()}")
    reference = t.model if t else inputs.build(dict(inputs.space.maximum_point))
    timings = latency.compare({"model": student.model, "T": reference}, inputs.space.settings.vocab_size,
                              inputs.space.settings.seq_len)
    card = export.card_facts(meta, pick, inputs, theta, student, t, timings, teacher_name)
    if search_pick is not None:  # the user chose it, not the search: the card says which the search picked
        card["search"]["chosen_by"] = "--pick"
        card["search"]["search_pick"] = {k: search_pick[k] for k in xi} | {"W": search_pick["w"]}
    if unfinished:
        card["search"]["unfinished"] = unfinished
    if keep is not None and t is not None:  # --keep: the floor, and whether this model meets it on the test part
        ratio = student.test.accuracy / t.test.accuracy
        card["keep"] = {"floor": keep, "ratio": ratio, "verified": ratio >= keep}
    export.export(student.model, inputs, out, card)
    return DistilResult(out, xi, student, t, timings, card)


@dataclass
class DistilResult:
    out: Path
    architecture: dict
    student: Trained
    teacher: Trained | None
    latency: dict            # {"model": {batch: seconds}, "T": {...}}
    card: dict

    @property
    def accuracy(self) -> float:
        return self.student.test.accuracy

    @property
    def teacher_accuracy(self) -> float | None:
        return self.teacher.test.accuracy if self.teacher else None


# --- ose distil --keep F: the cheapest model verified to keep F of T's test accuracy ----------

@dataclass
class KeepResult:
    floor: float
    tried: list            # [(architecture, DistilResult)] in the order distilled
    verified: DistilResult | None


def keep_order(doc: dict, floor: float) -> list[dict]:
    """The candidates ``--keep`` distils, in order: the search's pick, then every other finished
    candidate whose short-run accuracy on B reaches ``floor`` of T's own (its short run, or T as
    given), cheapest first (i, then p). The assumption: a candidate short of the floor after the
    short run stays short of it after the final training, so it is not tried."""
    from .strategies.selection import finished

    t = doc["maximum_point"]
    ref = t.get("as_given") or (t.get("reference") if (t.get("reference") or {}).get("status") == "ok" else None)
    names = list(t["architecture"])
    pick = doc["best"]
    rest = [r for r in finished(doc["evaluations"]) if any(r[n] != pick[n] for n in names)]
    if ref is not None and doc["settings"].get("config", {}).get("metric", "error") == "error":
        rest = [r for r in rest if 1 - r["error"] >= floor * (1 - ref["error"])]
    seen, order = {tuple(pick[n] for n in names)}, [pick]
    for r in sorted(rest, key=lambda r: (r["ops"], r["params"])):
        if tuple(r[n] for n in names) not in seen:  # one ξ under several θ: its best θ, as --pick takes it
            seen.add(tuple(r[n] for n in names))
            order.append(r)
    return order


def distil_keep(run_dir: str | Path, floor: float, steps: int = STEPS, save_every: int = 25, log=print,
                progress: bool = True, partial: bool = False, force: bool = False) -> KeepResult:
    """Distil the pick and measure it against T on the test part; while it keeps less than ``floor``
    of T's accuracy, distil the next candidate of ``keep_order``. Every run is kept (its folder and
    its saved state), so a rerun reuses what was distilled."""
    from .report.outputs import read_document

    run_dir = Path(run_dir)
    if not 0 < floor <= 1:
        raise ConfigError(f"--keep must be a share of T's accuracy in (0, 1], got {floor}")
    meta, _, _ = load_study(run_dir, partial)
    if meta["settings"].get("init") != "inherit":
        raise ConfigError(f"{run_dir}: --keep compares with T's test accuracy, and this study has no pretrained T "
                          f"(it ran from scratch); distil without --keep")
    doc = read_document(run_dir)
    order = keep_order(doc, floor)
    names = list(doc["maximum_point"]["architecture"])
    log(f"distil --keep {floor:g}: the pick, then {len(order) - 1} more candidate(s) predicted to keep it, cheapest "
        f"first")
    tried = []
    for n, record in enumerate(order):
        chosen = None if n == 0 else ",".join(f"{k}={record[k]}" for k in names)
        result = distil(run_dir, steps, None, save_every, log, progress, partial, force, pick=chosen, keep=floor)
        tried.append(({k: record[k] for k in names}, result))
        ratio = result.accuracy / result.teacher_accuracy
        log(f"distil --keep: ⟨{', '.join(f'{k}={record[k]}' for k in names)}⟩ keeps {ratio:.3f} of T's test "
            f"accuracy ({'meets' if ratio >= floor else 'misses'} the floor {floor:g})")
        if ratio >= floor:
            return KeepResult(floor, tried, result)
    return KeepResult(floor, tried, None)
