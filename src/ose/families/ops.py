"""Operation counts of the layers families share, one helper per kind (see docs/COUNTING.md).

Each returns a ``costs.Op`` for a part (A, B or C) of one forward pass over ``rows`` rows.
"""

from __future__ import annotations

from ..costs import Op


def linear(part: str, name: str, rows: int, n: int, m: int, bias: bool = True) -> Op:
    """n → m over r rows: r·n·m multiplications; r·(n−1)·m additions in the dot products, plus
    r·m for the bias. The multiplications are the matrix-product part."""
    return Op(part, name, mults=rows * n * m, adds=rows * (n if bias else n - 1) * m, matmul=True)


def attention(part: str, heads: int, L: int, d: int) -> list[Op]:
    """Scores q·kᵀ and context softmax·v of ``heads`` heads of size d over L positions, with the
    scaling by 1/√d and the additive mask (1 mult and 1 add per score) and the softmax (n − 1
    max comparisons, n exps and n divisions as other; n subtractions and n − 1 additions)."""
    scores = heads * L * L
    return [Op(part, "attention.scores", mults=scores * d, adds=scores * (d - 1), matmul=True),
            Op(part, "attention.scale_mask", mults=scores, adds=scores),
            Op(part, "attention.softmax", adds=heads * L * (2 * L - 1), other=heads * L * (3 * L - 1)),
            Op(part, "attention.context", mults=scores * d, adds=heads * L * (L - 1) * d, matmul=True)]


def layernorm(part: str, name: str, rows: int, n: int) -> Op:
    """Per row: 2n mults (square, γ), 4n − 1 adds (mean sum, centre, variance sum, β, plus ε),
    n + 3 other (two means' divisions, one sqrt, n divisions)."""
    return Op(part, name, mults=rows * 2 * n, adds=rows * (4 * n - 1), other=rows * (n + 3))


def rmsnorm(part: str, name: str, rows: int, n: int) -> Op:
    """Per row: 3n mults (square, scale by 1/rms, γ), n adds (n − 1 for the sum of squares and
    the ε), 2 other (the mean's division, one rsqrt)."""
    return Op(part, name, mults=rows * 3 * n, adds=rows * n, other=rows * 2)


def gelu(part: str, name: str, elements: int) -> Op:
    """Exact GELU, 0.5·x·(1 + erf(x/√2)): 3 mults, 1 add, 1 other per element."""
    return Op(part, name, mults=3 * elements, adds=elements, other=elements)


def gelu_tanh(part: str, name: str, elements: int) -> Op:
    """GELU's tanh approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): 6 mults (x², x³, the
    two constants, 0.5·x, the product), 2 adds, 1 other (tanh) per element."""
    return Op(part, name, mults=6 * elements, adds=2 * elements, other=elements)


def relu(part: str, name: str, elements: int) -> Op:
    """ReLU, max(0, x): 1 other (the comparison) per element."""
    return Op(part, name, other=elements)


def silu(part: str, name: str, elements: int) -> Op:
    """SiLU, x·σ(x) = x / (1 + e⁻ˣ): 1 mult, 1 add, 2 other (the exp, the division) per element."""
    return Op(part, name, mults=elements, adds=elements, other=2 * elements)


def residual(part: str, name: str, elements: int) -> Op:
    return Op(part, name, adds=elements)
