"""Cost records for the closed-form surrogates and the W-coefficient.

A network with the ABⁿC shape is f(x) = C(Bₙ(…B₁(A(x))…)): input layer A, intermediate
layers B, output layer C. Every cost is kept per part so that the "effective" size the
paper reports (B alone) and the ABⁿC condition (B dominates) can be read off directly.

p(ξ) is the parameter count; i(ξ) the operation count of one forward pass, split into
multiplications, additions and other operations (exp, division, sqrt, erf, tanh, max).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PARTS = ("A", "B", "C")


@dataclass(frozen=True)
class Op:
    """One operation of a forward pass, as counted by a family's closed form.

    ``matmul`` marks the multiplications of a matrix product (the part a traced FLOP
    counter sees); the bias additions of a linear layer belong to the same op.
    """

    part: str
    name: str
    mults: int = 0
    adds: int = 0
    other: int = 0
    matmul: bool = False

    def times(self, n: int) -> Op:
        """The same operation n times (one per layer of n identical layers)."""
        return Op(self.part, self.name, self.mults * n, self.adds * n, self.other * n, self.matmul)


@dataclass(frozen=True)
class Counts:
    """Parameters and operations of one part (or the whole network)."""

    params: int = 0
    mults: int = 0
    adds: int = 0
    other: int = 0

    @property
    def ops(self) -> int:
        return self.mults + self.adds + self.other

    def __add__(self, o: Counts) -> Counts:
        return Counts(self.params + o.params, self.mults + o.mults, self.adds + o.adds, self.other + o.other)


@dataclass(frozen=True)
class Cost:
    """p(ξ) and i(ξ) of one architecture, by part A (input), B (intermediate), C (output)."""

    parts: dict[str, Counts] = field(default_factory=dict)

    @classmethod
    def from_ops(cls, params: dict[str, int], ops: list[Op]) -> Cost:
        acc = {p: [params.get(p, 0), 0, 0, 0] for p in PARTS}
        for op in ops:
            a = acc[op.part]
            a[1] += op.mults
            a[2] += op.adds
            a[3] += op.other
        return cls({p: Counts(*acc[p]) for p in PARTS})

    @property
    def total(self) -> Counts:
        return self.parts["A"] + self.parts["B"] + self.parts["C"]

    @property
    def params(self) -> int:
        return self.total.params

    @property
    def params_effective(self) -> int:
        """Size without embeddings and head, as the Bort paper reports "effective size"."""
        return self.parts["B"].params

    @property
    def mults(self) -> int:
        return self.total.mults

    @property
    def adds(self) -> int:
        return self.total.adds

    @property
    def other(self) -> int:
        return self.total.other

    @property
    def ops(self) -> int:
        """i(ξ): additions + multiplications + other operations."""
        return self.total.ops

    def as_dict(self) -> dict:
        """Integer keys shared by ``ose count``, ``ose space`` and results.json."""

        def keys(c: Counts, effective: int) -> dict[str, int]:
            return {"params": c.params, "params_effective": effective, "mults": c.mults,
                    "adds": c.adds, "other": c.other, "ops": c.ops}

        out = keys(self.total, self.params_effective)
        out["parts"] = {p: keys(self.parts[p], self.parts[p].params if p == "B" else 0) for p in PARTS}
        return out


def error_floor(targets: int) -> float:
    """The least ê that W divides by, for B of ``targets`` targets: half of one target.

    ê is measured on a finite B, so ê = 0 says "fewer than one error in ``targets``", not "never
    wrong": the smallest error B can show is 1/targets, and half of it is the usual continuity
    correction for a count of zero. Without a floor every such candidate scored W = ∞, all tied, and
    the pick among them went unexplained; with it W stays finite and ranks them by p and i.
    """
    return 0.5 / max(targets, 1)


def w_coefficient(p: float, i: float, error: float, p_max: float, i_max: float, strict: bool = True,
                  floor: float = 0.0) -> float:
    """W(f) = ((p(T) − p(f)) / p(T)) · ((i(T) − i(f)) / i(T)) · (1 / max(ê(f), floor)).

    T is the maximum point. ose passes B's ``error_floor`` as ``floor``, so W is always finite;
    with no floor (0) an error of 0 makes W infinite. ``strict=False`` allows i above T's, for
    measured latency, which need not be monotone in the architecture: a candidate measured slower
    than T then gets a negative W.
    """
    if strict and (p > p_max or i > i_max):
        raise ValueError(f"candidate (p={p}, i={i}) exceeds the maximum point (p={p_max}, i={i_max})")
    if error < 0:
        raise ValueError(f"error must be non-negative, got {error}")
    gain = ((p_max - p) / p_max) * ((i_max - i) / i_max)
    error = max(error, floor)
    if error == 0:
        return float("inf") if gain > 0 else (0.0 if gain == 0 else float("-inf"))
    return gain / error
