"""Fault injection for the crash and failure tests (never set in normal use).

``OSE_FAULT`` holds ``POINT:ARG`` items separated by ``;``:

- ``store-write:N``, ``report-write:N``, ``save-PHASE:N``, ``prepared:N``: SIGKILL this process
  the N-th time it reaches the point (inside a store transaction before it commits; between two
  output files; after the training state of a run of that phase, ``T`` or ``student``, is
  saved; once a study's inputs are prepared);
- ``raise:ARCH``: evaluating the architecture ARCH (its key, e.g. ``D=1,A=2,H=16,I=32``)
  raises RuntimeError, as a bug in a candidate would;
- ``hold:ARCH@DIR``: evaluating ARCH writes ``DIR/held.PID`` and waits until ``DIR/release``
  exists, so that a test knows which worker is busy on it and can kill that worker.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_counts: dict[str, int] = {}


def _spec(point: str) -> str | None:
    for item in os.environ.get("OSE_FAULT", "").split(";"):
        name, sep, arg = item.partition(":")
        if sep and name == point:
            return arg
    return None


def fault(point: str) -> None:
    arg = _spec(point)
    if arg is None:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == int(arg):
        os.kill(os.getpid(), signal.SIGKILL)


def evaluation_fault(arch: str) -> None:
    """The ``raise`` and ``hold`` faults, at the start of evaluating architecture ``arch``."""
    if _spec("raise") == arch:
        raise RuntimeError(f"injected fault in {arch}")
    hold = _spec("hold")
    if hold and hold.partition("@")[0] == arch:
        folder = Path(hold.partition("@")[2])
        if not (folder / "release").exists():
            (folder / f"held.{os.getpid()}").write_text("")
            while not (folder / "release").exists():
                time.sleep(0.05)
