"""Every executor gives the same evaluations; a killed worker's evaluation runs again."""

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import replace

import pytest

import ose
from ose.config import load_config
from ose.context import make_context
from ose.evaluate import evaluate
from ose.executors import longest_first, make_executor
from ose.space import load_space


@pytest.fixture(scope="module")
def space_file(tmp_path_factory, tiny_space):
    root = tmp_path_factory.mktemp("executors")
    (root / "space.toml").write_text(tiny_space())
    return root / "space.toml"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path_factory.getbasetemp() / "ose-cache"))
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _run(space_file, out, steps=15, **kw):
    return ose.extract(space=str(space_file), epsilon=1, steps=steps, max_examples=1500, eval_batches=1, threads=1,
                       out=str(out), progress=False, log=lambda *a: None, **kw)


def _table(result):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in result.evaluations]


@pytest.fixture(scope="module")
def local(space_file, tmp_path_factory):
    return _run(space_file, tmp_path_factory.mktemp("local"))


def test_processes_give_the_same_evaluations_as_local(space_file, tmp_path, local):
    res = _run(space_file, tmp_path / "p", executor="processes", workers=2)
    assert _table(res) == _table(local)
    assert res.best["D"] == local.best["D"] and res.best["w"] == local.best["w"]


def test_an_adaptive_strategy_asks_the_same_on_workers_with_ask_batch(space_file, tmp_path):
    kw = {"strategy": "tpe", "budget": 4, "ask_batch": 2, "steps": 5}
    here = _run(space_file, tmp_path / "l", **kw)
    there = _run(space_file, tmp_path / "p", executor="processes", workers=2, **kw)
    assert _table(there) == _table(here) and len(here.evaluations) == 4


def _ray_processes():
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "gcs_server" in line or "raylet" in line or "ray::" in line]


def test_ray_gives_the_same_evaluations_on_loopback_and_leaves_nothing_behind(space_file, tmp_path, local):
    pytest.importorskip("ray")
    listening = []

    def watch():  # sample Ray's listening sockets while the study runs
        for _ in range(200):
            ss = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
            listening.extend(line for line in ss.splitlines() if "gcs_server" in line or "raylet" in line)
            if listening:
                return
            time.sleep(0.1)

    t = threading.Thread(target=watch)
    t.start()
    res = _run(space_file, tmp_path / "r", executor="ray", workers=2)
    t.join()
    assert _table(res) == _table(local)
    assert listening, "never saw Ray listening"
    for line in listening:
        local_addr = line.split()[3]
        assert local_addr.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")), line
    deadline = time.time() + 20
    while _ray_processes() and time.time() < deadline:
        time.sleep(0.5)
    assert _ray_processes() == []


@pytest.fixture(scope="module")
def study(space_file, tmp_path_factory):
    """The shared context of a tiny study and three jobs, cheapest first."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv("OSE_CACHE", str(tmp_path_factory.getbasetemp() / "ose-cache"))
        cfg = load_config(None, {"space": str(space_file), "steps": 5, "max_examples": 1500, "eval_batches": 1,
                                 "threads": 1, "out": str(tmp_path_factory.mktemp("ctx"))})
        space = load_space(cfg.space)
        ctx = make_context(cfg, space)
    jobs = [(c.key, c.xi, ctx.cfg.theta[0]) for c in space.candidates()[:3]]
    return cfg, space, ctx, jobs


def _records(study, executor, workers=2, retries=2, before_run=None, during_run=None):
    """{key: record without seconds} from running the study's jobs on ``executor``."""
    cfg, space, ctx, jobs = study
    cfg = replace(cfg, executor=executor, workers=workers, retries=retries)
    ex = make_executor(cfg, space, max_parallel=len(jobs), log=lambda *a: None)
    watcher = None
    try:
        ex.start(ctx)
        if before_run:
            before_run(ex)
        if during_run:
            watcher = threading.Thread(target=during_run, daemon=True)
            watcher.start()
        got = {key: record for key, _, _, record in ex.run(jobs)}
    finally:
        ex.close()
    if watcher:
        watcher.join(10)
    return {k: {f: v for f, v in r.items() if f != "seconds"} for k, r in got.items()}


def _needs(executor):
    if executor == "ray":
        pytest.importorskip("ray")


@pytest.mark.parametrize("executor", ["local", "processes", "ray"])
def test_an_exception_in_a_candidate_is_a_failed_record_on_every_executor(study, executor, monkeypatch):
    _needs(executor)
    victim = study[3][1][0]
    monkeypatch.setenv("OSE_FAULT", f"raise:{victim}")
    got = _records(study, executor)
    assert got[victim]["status"] == "failed"
    assert got[victim]["message"] == f"RuntimeError: injected fault in {victim}"
    assert [r["status"] for k, r in got.items() if k != victim] == ["ok", "ok"]
    monkeypatch.delenv("OSE_FAULT")
    assert {k: r for k, r in got.items() if k != victim} == \
        {k: r for k, r in _records(study, "local").items() if k != victim}


def _kill_the_holder(folder):
    """Wait until a worker is busy on the held job (its pid file appears), kill it, release the job."""
    def watch():
        deadline = time.time() + 120
        while not list(folder.glob("held.*")) and time.time() < deadline:
            time.sleep(0.02)
        held = list(folder.glob("held.*"))
        if held:
            os.kill(int(held[0].suffix[1:]), signal.SIGKILL)
        (folder / "release").write_text("")
    return watch


@pytest.mark.parametrize("retries", [2, 0])
@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_a_worker_killed_while_busy(study, executor, retries, monkeypatch, tmp_path):
    _needs(executor)
    victim = study[3][1][0]
    monkeypatch.setenv("OSE_FAULT", f"hold:{victim}@{tmp_path}")
    got = _records(study, executor, retries=retries, during_run=_kill_the_holder(tmp_path))
    assert len(list(tmp_path.glob("held.*"))) == 1, "the held job was never started"
    assert len(got) == 3
    others = [r["status"] for k, r in got.items() if k != victim]
    assert others == ["ok", "ok"]
    if retries:
        assert got[victim]["status"] == "ok"  # ran again on a fresh worker
    else:
        assert got[victim]["status"] == "failed" and "worker died" in got[victim]["message"]


@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_a_worker_killed_while_idle_loses_nothing_even_without_retries(study, executor):
    _needs(executor)
    killed = []

    def kill_one(ex):
        pid = ex.pids()[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    got = _records(study, executor, retries=0, before_run=kill_one)
    assert killed and [r["status"] for r in got.values()] == ["ok"] * 3


def test_no_more_workers_than_jobs_and_a_warning_past_the_cores(study):
    cfg, space, _, _ = study
    said = []
    ex = make_executor(replace(cfg, executor="processes", workers=64), space, max_parallel=3, log=said.append)
    try:
        assert ex.n == 3 and len(ex.pids()) == 3
    finally:
        ex.close()
    assert any("starting 3 workers, not 64" in line for line in said)
    assert any("oversubscribed" in line for line in said) == (3 > os.cpu_count())


def test_ray_workers_that_cannot_be_placed_are_refused_in_one_line():
    from ose.config import ConfigError
    from ose.executors import _fit

    cfg = load_config(None, {"threads": 2})
    with pytest.raises(ConfigError, match="2 workers × 2 threads need 4 CPUs; the Ray cluster at h:1 has 2"):
        _fit(cfg, 2, {"CPU": 2.0}, "h:1", 0.0)
    assert _fit(cfg, None, {"CPU": 8.0}, "h:1", 0.0, max_parallel=3) == (3, 2)


def test_local_ray_is_sized_to_fit_workers_times_threads(study):
    """--workers 2 --threads 2 once hung: Ray got 2 CPUs for two actors asking 2 each."""
    _needs("ray")
    cfg, space, ctx, jobs = study
    ex = make_executor(replace(cfg, executor="ray", workers=2, threads=2), space, max_parallel=3, log=lambda *a: None)
    try:
        ex.start(ctx)
        got = list(ex.run(jobs[:2]))
    finally:
        ex.close()
    assert ex.n == 2 and [r["status"] for *_, r in got] == ["ok", "ok"]


def test_unreachable_ray_address_fails_fast(space_file, tmp_path, run_cli):
    pytest.importorskip("ray")
    start = time.time()
    code, _, err = run_cli("extract", "--space", space_file, "--executor", "ray", "--address", "127.0.0.1:9",
                           "--out", tmp_path / "x", "--max-examples", "1500", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "cannot reach a Ray cluster" in err
    assert time.time() - start < 30
    assert not (tmp_path / "x").exists()


def test_jobs_go_out_longest_first(space_file):
    space = load_space(str(space_file))
    theta = load_config(None, {}).with_defaults().theta[0]
    jobs = [(str(i), c.xi, theta) for i, c in enumerate(space.candidates())]
    ops = [space.cost(xi).ops for _, xi, _ in longest_first(jobs, space)]
    assert ops == sorted(ops, reverse=True) and len(ops) == len(jobs)


@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_workers_evaluate_the_drivers_data_without_reading_any_file(space_file, tmp_path, monkeypatch, executor):
    """The driver prepares the data once and ships it: a Ray node elsewhere need not have the files."""
    if executor == "ray":
        pytest.importorskip("ray")
    data = tmp_path / "corpus.txt"
    animals = ("cat", "dog", "bird")
    data.write_text("".join(f"the {animals[i % 3]} sat on mat number {i} and looked at the {animals[i % 2]}\n"
                            for i in range(400)))
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    cfg = load_config(None, {"space": str(space_file), "data": str(data), "steps": 5, "eval_batches": 1,
                             "executor": executor, "workers": 2, "threads": 1, "out": str(tmp_path / "o")})
    space = load_space(cfg.space)
    ctx = make_context(cfg, space)
    data.unlink()
    shutil.rmtree(tmp_path / "cache")
    jobs = [(str(i), c.xi, ctx.cfg.theta[0]) for i, c in enumerate(space.candidates()[:3])]
    ex = make_executor(cfg, space, max_parallel=len(jobs))
    try:
        ex.start(ctx)
        got = {key: record for key, _, _, record in ex.run(jobs)}
    finally:
        ex.close()
    for key, xi, theta in jobs:
        assert got[key]["status"] == "ok", got[key]["message"]
        want = evaluate(ctx, xi, theta)
        assert {k: v for k, v in got[key].items() if k != "seconds"} == {k: v for k, v in want.items() if k != "seconds"}
