"""Ctrl-C during a study: one line on stderr and exit code 130, under every local executor.

A terminal sends SIGINT to its whole foreground process group, the workers included; each used
to print its own KeyboardInterrupt traceback (about a hundred lines) beside the driver's line.
The test does what the terminal does, once a worker is busy on a held architecture (the ``hold``
fault), never after a guessed sleep. Ray was checked by hand the same way (its start-up is too
slow to repeat here): one line, exit code 130.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from ose.space import load_space
from ose.study import holder


def _wait_for(predicate, proc, limit=120):
    start = time.time()
    while not predicate():
        assert proc.poll() is None, f"the study ended before the interrupt (rc={proc.returncode})"
        assert time.time() - start < limit, "the study never reached the held architecture"
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_ctrl_c_is_one_line_and_exit_130(executor, tmp_path, tiny_space):
    (tmp_path / "space.toml").write_text(tiny_space())
    held = tmp_path / "held"
    held.mkdir()
    first = load_space(tmp_path / "space.toml").candidates()[0].key
    env = {**os.environ, "OSE_CACHE": str(tmp_path / "cache"), "OSE_FAULT": f"hold:{first}@{held}"}
    workers = ["--workers", "2"] if executor == "processes" else []
    cmd = [sys.executable, "-m", "ose", "extract", "--space", str(tmp_path / "space.toml"), "--epsilon", "1",
           "--steps", "2", "--max-examples", "500", "--eval-batches", "1", "--threads", "1", "--theta", "batch_size=8",
           "--quiet", "--executor", executor, *workers, "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: the SIGINT below spares pytest
    try:
        _wait_for(lambda: list(held.glob("held.*")), proc)
        busy = int(next(held.glob("held.*")).suffix[1:])  # the process training the held architecture
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C on a terminal does
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err == "ose: interrupted\n"
    assert _gone(busy)
    assert holder(tmp_path / "out") is None  # the study is free to resume
