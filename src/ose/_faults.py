"""Fault injection for the crash tests (never set in normal use).

``OSE_FAULT=POINT:N`` kills the process with SIGKILL the N-th time it reaches ``POINT``:
``store-write`` (inside a store transaction, before it commits) or ``report-write``
(between two output files).
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def fault(point: str) -> None:
    spec = os.environ.get("OSE_FAULT", "")
    if not spec.startswith(point + ":"):
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == int(spec.split(":", 1)[1]):
        os.kill(os.getpid(), signal.SIGKILL)
