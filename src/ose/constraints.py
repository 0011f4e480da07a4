"""Constraints of a search space: safe expressions over ξ's parameters, such as ``H % A == 0``,
and over its closed-form counts: ``p`` and ``i`` (the whole network's, as W counts them) beside
T's ``p_T`` and ``i_T``, so that "at most 30% of T's parameters" reads ``p <= 0.3 * p_T``.

A constraint is parsed into an AST and walked here; nothing is ever passed to ``eval``. It is
evaluated two ways that agree: on one ξ (``Constraint.__call__``, exact Python integers, with a
message naming ξ where a value is refused), and on whole columns of ξ (``holds``, float64, for
grids of millions of architectures), the latter only while every value stays an integer float64
holds exactly and nothing divides by zero; elsewhere it raises ``Inexact`` and the caller
enumerates the exact way.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


def arch_key(xi: Mapping[str, int]) -> str:
    """ξ as the store, the tables and the messages name it: ``D=2,A=4,H=256,I=1024``."""
    return ",".join(f"{k}={v}" for k, v in xi.items())


# Bounds that keep a constraint cheap whatever the file says: without them ``H ** 99999999``
# takes seconds per architecture, ``H ** H ** H`` grows memory without end, and a deep
# expression overflows the recursive walker below.
MAX_DEPTH = 32                # nodes on the longest path from the root to a leaf
MAX_EXPONENT = 64             # |exponent| of a power
MAX_MAGNITUDE = 10 ** 30      # |value| of any number written or computed
_MAGNITUDE_TEXT = "10**30"


# The counts a constraint may name beside ξ's parameters (``counts_env`` gives their values).
COST_NAMES = ("p", "i", "p_T", "i_T")


class ConstraintError(ValueError):
    """A constraint that cannot be evaluated at some ξ; the message names both."""


class _Refused(ValueError):
    """What went wrong inside one evaluation; ``Constraint`` adds the text and the ξ."""


def _power(base, exponent):
    if abs(exponent) > MAX_EXPONENT:
        raise _Refused(f"has an exponent of {exponent!r} (exponents are limited to ±{MAX_EXPONENT})")
    # Estimated from the logarithm before computing: the power itself may be what is too big
    # (and a float power raises OverflowError). One bit of slack; the exact check follows.
    if base != 0 and exponent * math.log2(abs(base)) > math.log2(MAX_MAGNITUDE) + 1:
        raise _Refused(f"exceeds {_MAGNITUDE_TEXT} in magnitude")
    return base ** exponent


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: _power}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}


@dataclass(frozen=True)
class Constraint:
    """A boolean expression over the parameters: arithmetic, comparisons, and/or/not only.

    It is parsed into an AST and walked here; nothing is ever passed to ``eval``. Depth,
    exponents and magnitudes are bounded (see MAX_DEPTH), so evaluating it is always cheap.
    """

    text: str
    tree: ast.Expression

    @classmethod
    def parse(cls, text: str, names: tuple[str, ...]) -> Constraint:
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as e:
            raise ValueError(f"cannot parse {text!r}: {e.msg}") from None
        except (RecursionError, MemoryError):  # Python's own parser gives up on deep nesting
            raise ValueError(f"{text!r} nests too deeply (constraints are limited to {MAX_DEPTH} levels)") from None
        depth = _depth(tree)
        if depth > MAX_DEPTH:
            raise ValueError(f"{text!r} nests {depth} levels deep (constraints are limited to {MAX_DEPTH})")
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in (*names, *COST_NAMES):
                raise ValueError(f"{text!r} names {node.id!r}, which is not a parameter ({', '.join(names)}) "
                                 f"or a count ({', '.join(COST_NAMES)}: ξ's p and i, T's p_T and i_T)")
            allowed = (ast.Expression, ast.Name, ast.Load, ast.Constant, ast.BinOp, ast.UnaryOp, ast.USub,
                       ast.Not, ast.BoolOp, ast.And, ast.Or, ast.Compare, *_BINOPS, *_CMPOPS)
            if not isinstance(node, allowed):
                raise ValueError(f"{text!r} uses {type(node).__name__}, which constraints do not allow")
            if isinstance(node, ast.Constant) and type(node.value) not in (int, float):
                raise ValueError(f"{text!r} holds {node.value!r}; only numbers are allowed")
            if isinstance(node, ast.Constant) and not abs(node.value) <= MAX_MAGNITUDE:
                raise ValueError(f"{text!r} holds {node.value!r}; numbers are limited to {_MAGNITUDE_TEXT} "
                                 f"in magnitude")
        return cls(text, tree)

    def __call__(self, xi: Mapping[str, int]) -> bool:
        try:
            return bool(_evaluate(self.tree.body, xi))
        except _Refused as e:
            raise ConstraintError(f"{self.text!r} {e} at {arch_key(xi)}") from None


def _depth(tree: ast.Expression) -> int:
    """Nesting depth of the expression, counted without recursion (the tree may be deep)."""
    deepest, stack = 0, [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
    return deepest


def _bounded(value):
    if isinstance(value, complex):  # a negative base to a fractional power
        raise _Refused("has no real value")
    if not abs(value) <= MAX_MAGNITUDE:  # also catches NaN
        raise _Refused(f"exceeds {_MAGNITUDE_TEXT} in magnitude")
    return value


def _evaluate(node: ast.AST, env: Mapping[str, int]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, env), _evaluate(node.right, env)
        try:
            return _bounded(_BINOPS[type(node.op)](left, right))
        except ZeroDivisionError:  # also 0 ** -n
            raise _Refused("divides by zero") from None
    if isinstance(node, ast.UnaryOp):
        v = _evaluate(node.operand, env)
        return -v if isinstance(node.op, ast.USub) else not v
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(v, env) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    left = _evaluate(node.left, env)
    for op, comparator in zip(node.ops, node.comparators):
        right = _evaluate(comparator, env)
        if not _CMPOPS[type(op)](left, right):
            return False
        left = right
    return True


# --- on columns of ξ ----------------------------------------------------------------------

EXACT = float(2 ** 53)  # float64 holds every integer up to here


class Inexact(ValueError):
    """A column value float64 cannot be trusted with: the exact path decides."""


def _checked(value: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(value)) or np.any(np.abs(value) > EXACT):
        raise Inexact()
    return value


def _columns_value(node: ast.AST, env: Mapping[str, np.ndarray]):
    """``_evaluate`` on whole columns (float64); raises ``Inexact`` where it may differ."""
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _columns_value(node.left, env), _columns_value(node.right, env)
        op = type(node.op)
        if op in (ast.Div, ast.FloorDiv, ast.Mod) and np.any(np.asarray(right) == 0):
            raise Inexact()  # the exact path says "divides by zero"
        if op is ast.Pow and (np.any(np.abs(right) > MAX_EXPONENT) or np.any((np.asarray(left) == 0) & (right < 0))):
            raise Inexact()
        with np.errstate(all="ignore"):
            return _checked(np.asarray(np.power(left, right) if op is ast.Pow else _BINOPS[op](left, right),
                                       dtype=float))
    if isinstance(node, ast.UnaryOp):
        v = _columns_value(node.operand, env)
        return -v if isinstance(node.op, ast.USub) else np.logical_not(np.asarray(v) != 0)
    if isinstance(node, ast.BoolOp):
        parts = [np.asarray(_columns_value(v, env)) != 0 for v in node.values]
        return (np.logical_and if isinstance(node.op, ast.And) else np.logical_or).reduce(parts)
    left, out = _columns_value(node.left, env), True
    for op, comparator in zip(node.ops, node.comparators):
        right = _columns_value(comparator, env)
        out = np.logical_and(out, _CMPOPS[type(op)](left, right))
        left = right
    return out


def holds(constraint: Constraint, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Where ``constraint`` holds over rows of ξ columns, in float64; ``Inexact`` where that may
    differ from what it says of each ξ."""
    n = len(next(iter(columns.values())))
    floats = {k: v.astype(float) for k, v in columns.items()}
    return np.broadcast_to(np.asarray(_columns_value(constraint.tree.body, floats)) != 0, (n,)).copy()


def names_of(constraint: Constraint) -> set[str]:
    """The parameters and counts a constraint names."""
    return {node.id for node in ast.walk(constraint.tree) if isinstance(node, ast.Name)}


def on_counts(constraint: Constraint) -> bool:
    """Whether a constraint names p, i, p_T or i_T: it is checked once ξ is costed."""
    return bool(names_of(constraint) & set(COST_NAMES))


def counts_env(params, ops, t_cost) -> dict:
    """The values of ``COST_NAMES`` (numbers for one ξ, or columns of equal length)."""
    return {"p": params, "i": ops, "p_T": t_cost.params + 0 * params, "i_T": t_cost.ops + 0 * ops}
