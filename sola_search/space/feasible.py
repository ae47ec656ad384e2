"""The set of patterns a budget admits: exact count, exactly uniform sampling, enumeration.

A budget bounds the softmax count and the (additive) MACs. Splitting the blocks into two halves and
enumerating each (meet in the middle) makes all three exact for every variant: for each pattern of
the second half, the first-half patterns that complete it within budget are a prefix of one sorted
array. 2^(n/2) work instead of 2^n."""

from __future__ import annotations

import itertools
import random
from math import comb

import numpy as np

from sola_search.errors import SolaError
from sola_search.space.budget import Budget
from sola_search.space.cost import cost_table
from sola_search.space.pattern import Pattern
from sola_search.space.variants import Variant, get_variant


def _half(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 0/1 assignments of a few blocks: (bits, softmax count, extra MACs)."""
    n = len(delta)
    bits = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.int8)
    return bits, bits.sum(1), bits.astype(np.int64) @ delta


class FeasibleSet:
    """The patterns of `variant` that `budget` admits at `resolution` (full-size cost)."""

    def __init__(self, variant: str | Variant, budget: Budget, resolution: int = 224):
        self.variant, self.budget, self.resolution = get_variant(variant), budget, resolution
        table = cost_table(self.variant, resolution)
        n = self.variant.num_blocks
        self.max_softmax = budget.softmax_limit(n)
        self._params_ok = budget.max_params is None or table.params <= budget.max_params
        room = None if budget.max_macs is None else budget.max_macs - table.all_linear_macs
        # A latency limit is a second additive cost: completions are then counted by a mask, not a prefix.
        latency = budget.priced(budget.latency).latency if budget.max_ms is not None else None
        self._ms_room = None if latency is None else budget.max_ms - latency.all_linear_ms
        self._macs_limited = room is not None or latency is not None
        a = n // 2
        self._a_bits, a_k, a_cost = _half(table.delta[:a])
        self._b_bits, b_k, b_cost = _half(table.delta[a:])
        if latency is not None:
            self._a_ms = self._a_bits @ latency.delta[:a]
            self._b_ms = self._b_bits @ latency.delta[a:]
            self._b_cost, self._room = b_cost, room
        # For each softmax allowance t, the first-half patterns with at most t softmax blocks, by cost
        # (allowances beyond the half's size all see the whole half).
        self._a_sorted = []
        for t in range(min(self.max_softmax, a) + 1):
            idx = np.flatnonzero(a_k <= t)
            order = np.argsort(a_cost[idx], kind="stable")
            self._a_sorted.append((idx[order], a_cost[idx][order]))
        completions = np.zeros(len(self._b_bits), np.int64)
        for kb in range(min(self.max_softmax, n - a) + 1):
            js = np.flatnonzero(b_k == kb)
            _, costs = self._group(kb)
            completions[js] = len(costs) if room is None else np.searchsorted(costs, room - b_cost[js], side="right")
        self._b_k = b_k
        if latency is not None:
            completions = np.array([len(self._fits(j)) if k <= self.max_softmax else 0 for j, k in enumerate(b_k)],
                                   np.int64)
        self._completions = completions if self._params_ok else np.zeros_like(completions)

    def _group(self, kb: int) -> tuple[np.ndarray, np.ndarray]:
        """First-half patterns (indices, costs) that may join a second half with `kb` softmax blocks."""
        return self._a_sorted[min(self.max_softmax - kb, len(self._a_sorted) - 1)]

    def _fits(self, j: int) -> np.ndarray:
        """Positions in `_group` of the first halves that complete second half `j` within budget."""
        idx, costs = self._group(self._b_k[j])
        if self._ms_room is None:
            return np.arange(self._completions[j])  # a prefix: the group is sorted by cost
        ok = self._a_ms[idx] <= self._ms_room - self._b_ms[j]
        if self._room is not None:
            ok &= costs <= self._room - self._b_cost[j]
        return np.flatnonzero(ok)

    def count(self) -> int:
        """The exact number of admitted patterns (closed form when only the softmax count is limited)."""
        if not self._params_ok:
            return 0
        if not self._macs_limited:
            return sum(comb(self.variant.num_blocks, k) for k in range(self.max_softmax + 1))
        return int(self._completions.sum())

    def nonempty(self) -> FeasibleSet:
        """This set, or the one error for a budget that admits no pattern (a search would have nothing
        to propose): checked where a search is set up (`prepare`, an encoding) and before sampling."""
        if self.count() == 0:
            raise SolaError(f"budget {self.budget} admits no pattern of variant {self.variant.name} "
                            f"at {self.resolution}px")
        return self

    def _compose(self, j: int, r: np.ndarray) -> np.ndarray:
        idx, _ = self._group(self._b_k[j])
        a = self._a_bits[idx[self._fits(j)[r]]]
        return np.concatenate([a, np.broadcast_to(self._b_bits[j], (len(a), self._b_bits.shape[1]))], axis=1)

    def sample_bits(self, size: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """`size` patterns drawn independently and exactly uniformly, as a (size, blocks) 0/1 matrix."""
        total = self.nonempty().count()
        rng = np.random.default_rng(rng)
        # Pick the second half in proportion to its completions, then a completion uniformly.
        cum = np.cumsum(self._completions)
        u = rng.integers(0, total, size)
        js = np.searchsorted(cum, u, side="right")
        rs = u - (cum[js] - self._completions[js])
        return np.concatenate([self._compose(j, np.array([r])) for j, r in zip(js, rs, strict=True)]) if size else \
            np.zeros((0, self.variant.num_blocks), np.int8)

    def sample(self, size: int, rng: np.random.Generator | int | None = None) -> list[Pattern]:
        return [Pattern.from_bits(b, self.variant) for b in self.sample_bits(size, rng)]

    def enumerate_bits(self, limit: int = 1_000_000) -> np.ndarray:
        """Every admitted pattern as a 0/1 matrix; refuses spaces larger than `limit`."""
        total = self.count()
        if total > limit:
            raise SolaError(f"{total} patterns admitted: more than the enumeration limit {limit}; sample instead")
        parts = [self._compose(j, np.arange(c)) for j, c in enumerate(self._completions) if c]
        return np.concatenate(parts) if parts else np.zeros((0, self.variant.num_blocks), np.int8)

    def enumerate(self, limit: int = 1_000_000) -> list[Pattern]:
        return [Pattern.from_bits(b, self.variant) for b in self.enumerate_bits(limit)]


def unlimited_warning(budget: Budget, variants: list[str], resolution: int) -> str:
    """The one line `run` and `space` say when a budget admits every pattern of `variants` (`count()`
    is 2 ** blocks): such a budget is accepted, as a search of the whole space, but not silently."""
    return (f"sola-search: warning: budget {budget} admits every pattern of {', '.join(variants)} at "
            f"{resolution}px: it limits nothing")


def stratified_patterns(variant: str | Variant, budget: Budget, count: int, seed: int = 0,
                        resolution: int = 224) -> list[tuple[str, Pattern]]:
    """`count` distinct (name, pattern) under `budget`, deterministic for a seed, spread over the kinds
    of placement a ranking must tell apart (issue 13's fidelity protocol; uniform samples alone are
    nearly all mid-count mixtures): every baseline the budget admits, softmax confined to each single
    stage (the stage's last blocks, as many as the budget allows), softmax in stages 1-2, then uniform
    samples cycling over the softmax counts the budget admits (a feasible draw of that count where
    another budget term refuses the first). Fewer than `count` only when the budget admits fewer."""
    from sola_search.space.baselines import baselines

    v = get_variant(variant)
    chosen: dict[str, tuple[str, Pattern]] = {}  # text → (name, pattern), in the order chosen

    def add(name: str, bits) -> None:
        p = Pattern.from_bits(bits, v)
        if str(p) not in chosen and budget.admits(p, v, resolution) and len(chosen) < count:
            chosen[str(p)] = (name, p)

    for name, p in baselines(v, budget, resolution).items():
        add(name, p.bits)
    limit = budget.max_softmax if budget.max_softmax is not None else v.num_blocks
    starts = [sum(v.depths[:i]) for i in range(4)]
    for i, (s, d) in enumerate(zip(starts, v.depths, strict=True)):  # the stage's last blocks, as many as fit
        k = min(d, limit)
        add(f"stage-{i + 1}-only", [s + d - k <= j < s + d for j in range(v.num_blocks)])
    early = v.depths[0] + v.depths[1]
    add("stages-1-2", [j < min(early, limit) for j in range(v.num_blocks)])
    feasible = FeasibleSet(v, budget, resolution)
    total = min(count, feasible.count())
    rng = random.Random(seed)
    by_k: dict[int, list[Pattern]] = {}  # feasible draws by softmax count, for budgets of other terms too

    def feasible_with(k: int) -> list[Pattern]:
        if not by_k:
            for p in feasible.sample(20000, rng=seed):
                by_k.setdefault(p.softmax_layers, []).append(p)
        return by_k.get(k, [])

    counts = [k for k in range(1, v.num_blocks + 1) if k <= limit]
    tries = 0
    for k in itertools.cycle(counts):
        if len(chosen) >= total or tries > 100 * count:  # a space with fewer distinct draws than asked
            break
        tries += 1
        picked = set(rng.sample(range(v.num_blocks), k))
        bits = [j in picked for j in range(v.num_blocks)]
        if not budget.admits(Pattern.from_bits(bits, v), v, resolution) and feasible_with(k):
            bits = rng.choice(feasible_with(k)).bits  # other budget terms: a feasible draw of that count
        add(f"sample-{len(chosen)}", bits)
    return list(chosen.values())
