"""JSON as ose writes it: strict (RFC 8259), so that every parser reads it.

Python's ``json`` writes NaN and ±Infinity as bare words that JSON does not have (strict parsers,
``jq`` and browsers refuse them). Every file and every ``--format json`` ose writes goes through
``dumps``: a number that is undefined or unbounded there (a ratio to a count of 0, a W scored before
W had a floor) becomes null, and anything else non-finite is an error, not a silent bare word.
"""

from __future__ import annotations

import json
import math


def finite(value):
    """``value`` with every non-finite float, at any depth, replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value, **kw) -> str:
    """``json.dumps`` of ``value`` with its non-finite numbers as null; never NaN or Infinity."""
    return json.dumps(finite(value), allow_nan=False, **kw)
