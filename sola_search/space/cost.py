"""The exact analytic cost of a backbone: MACs (as PyTorch's FlopCounterMode counts them under the
MATH SDPA backend, halved) and parameters. Cost is additive over blocks, so a `CostTable` per
variant and resolution costs many patterns at once as a matrix-vector product."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sola_search.errors import SolaError
from sola_search.space.pattern import Pattern
from sola_search.space.variants import Variant, get_variant


def check_resolution(value: object, prefix: str) -> int:
    """The one rule for an input size, wherever one is given (an option, run.json, a pattern file).
    The error is `prefix` (which names the value and ends with its separator, e.g. "--resolution
    16: ") followed by the rule."""
    if isinstance(value, bool) or not isinstance(value, int):  # 224.0, "abc", true, null in a file
        raise SolaError(f"{prefix}expected a whole number of pixels from 32 to 4096")
    if not 32 <= value <= 4096:
        raise SolaError(f"{prefix}expected 32 to 4096 pixels")
    return value


def _down(n: int) -> int:
    """Output size of a 3×3, stride-2, padding-1 convolution."""
    return (n - 1) // 2 + 1


def _block(dim: int, heads: int, hidden: int, n: int) -> tuple[int, int, int]:
    """(MACs when linear, MACs when softmax, params) of one block over n tokens."""
    d = dim // heads
    shared = n * dim * (9 + 4 * dim + 25 + dim) + n * hidden * (2 * dim + 9)  # CPE, qkvg, LePE, proj, MLP
    linear = shared + heads * n * d * (2 * d + 1)  # kᵀv, φ(q)·(kᵀv), φ(q)·k̄ᵀ
    softmax = shared + 2 * heads * n * n * d  # q·kᵀ, attn·v
    params = (10 * dim + 2 * dim  # CPE, norm1
              + 5 * dim * (dim + 1) + 26 * dim + dim  # qkvg and proj with biases, LePE, γ1
              + 2 * dim + hidden * (2 * dim + 11) + dim + dim)  # norm2, MLP (fc1, dw, fc2), γ2
    return linear, softmax, params


@dataclass(frozen=True)
class CostTable:
    """Per-block MACs of each choice plus the pattern-independent rest, for one variant and resolution."""

    variant: Variant
    resolution: int
    num_classes: int
    fixed_macs: int  # stem, downsampling, head
    linear_macs: np.ndarray  # (blocks,) int64
    softmax_macs: np.ndarray  # (blocks,) int64
    params: int  # identical for every pattern: both mixers own the same parameters

    @property
    def all_linear_macs(self) -> int:
        return self.fixed_macs + int(self.linear_macs.sum())

    @property
    def delta(self) -> np.ndarray:
        """Extra MACs of making each block softmax (negative where N < head dim)."""
        return self.softmax_macs - self.linear_macs

    def macs(self, pattern: Pattern) -> int:
        bits = np.array(pattern.check(self.variant).bits)
        return self.fixed_macs + int(np.where(bits, self.softmax_macs, self.linear_macs).sum())

    def macs_many(self, bits: np.ndarray) -> np.ndarray:
        """MACs of many patterns given as a (P, blocks) 0/1 matrix, in one product."""
        return self.all_linear_macs + np.asarray(bits, dtype=np.int64) @ self.delta

    def costs(self, bits: np.ndarray | tuple[int, ...]) -> dict[str, int]:
        """What the pattern with these 0/1 block choices spends, by the names `Budget.violations`
        compares (and trials record): the one list of a pattern's costs."""
        bits = np.asarray(bits, dtype=np.int64)
        return {"softmax_layers": int(bits.sum()), "macs": int(self.macs_many(bits)), "params": self.params}


@lru_cache(maxsize=256)
def cost_table(variant: str | Variant, resolution: int = 224, num_classes: int = 1000, in_chans: int = 3) -> CostTable:
    """The exact cost table of a variant (or a proxy instance of it) at a square input resolution."""
    v = get_variant(variant)
    h = _down(_down(resolution))
    c0 = v.dims[0]
    fixed = _down(resolution) ** 2 * v.stem_dim * in_chans * 9 + h * h * c0 * v.stem_dim * 9
    params = (in_chans * 9 + 3) * v.stem_dim + (v.stem_dim * 9 + 3) * c0
    lin, soft = [], []
    cin = c0
    for i, (dim, depth, heads) in enumerate(zip(v.dims, v.depths, v.heads, strict=True)):
        if i:
            h = _down(h)
            fixed += h * h * dim * cin * 9
            params += (cin * 9 + 3) * dim
        ml, ms, p = _block(dim, heads, int(dim * v.mlp_ratio), h * h)
        lin += [ml] * depth
        soft += [ms] * depth
        params += p * depth
        cin = dim
    fixed += cin * num_classes
    params += 2 * cin + (cin + 1) * num_classes
    return CostTable(v, resolution, num_classes, fixed, np.array(lin, np.int64), np.array(soft, np.int64), params)


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        """FLOPs = 2 × MACs."""
        return 2 * self.macs / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def model_cost(variant: str | Variant, pattern: Pattern | str, resolution: int = 224, num_classes: int = 1000) -> Cost:
    """MACs and params of the full model of a variant with a pattern (a `Pattern`, its text or a
    baseline name, as `build_backbone` takes) at a resolution."""
    if not isinstance(pattern, Pattern):
        from sola_search.space.baselines import resolve_pattern  # baselines counts costs: import late

        pattern = resolve_pattern(pattern, variant)
    t = cost_table(variant, resolution, num_classes)
    return Cost(t.macs(pattern), t.params)
