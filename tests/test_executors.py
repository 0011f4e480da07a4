"""Every executor gives the same evaluations; a killed worker's evaluation runs again."""

import json
import multiprocessing as mp
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

import ose
from ose.config import load_config
from ose.evaluate import evaluate, make_context
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


def _rows(out):
    path = out / "study.db"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        return db.execute("SELECT count(*) FROM evaluations").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _kill_a_busy_worker(out, killed):
    """SIGKILL one worker process right after an evaluation lands (it has just taken the next)."""
    deadline = time.time() + 120
    while _rows(out) < 2 and time.time() < deadline:
        time.sleep(0.02)
    workers = [p for p in mp.active_children() if p.is_alive()]
    if workers:
        os.kill(workers[0].pid, signal.SIGKILL)
        killed.append(workers[0].pid)


@pytest.mark.parametrize("retries", [2, 0])
def test_a_worker_killed_mid_evaluation(space_file, tmp_path, local, retries):
    out = tmp_path / f"k{retries}"
    killed = []
    t = threading.Thread(target=_kill_a_busy_worker, args=(out, killed))
    t.start()
    res = _run(space_file, out, steps=60, executor="processes", workers=2, retries=retries)
    t.join()
    assert killed, "no worker was killed"
    assert len(res.evaluations) == 8
    failed = [r for r in res.evaluations if r["status"] != "ok"]
    if retries:
        assert failed == []  # the lost evaluation ran again on a fresh worker and the study completed
    else:
        assert len(failed) == 1 and "worker died" in failed[0]["message"]


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
    theta = load_config(None, {}).theta[0]
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
    jobs = [(str(i), c.xi, cfg.theta[0]) for i, c in enumerate(space.candidates()[:3])]
    ex = make_executor(cfg, space)
    try:
        ex.start(ctx)
        got = {key: record for key, _, _, record in ex.run(jobs)}
    finally:
        ex.close()
    for key, xi, theta in jobs:
        assert got[key]["status"] == "ok", got[key]["message"]
        want = evaluate(ctx, xi, theta)
        assert {k: v for k, v in got[key].items() if k != "seconds"} == {k: v for k, v in want.items() if k != "seconds"}
