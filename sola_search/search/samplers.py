"""Optuna samplers that only ever propose patterns inside the budget.

`FeasibleEvolutionSampler` is a steady-state multi-objective evolutionary sampler over the per-block
parameters (`s1b1` … `s4b3`, "linear"/"softmax"). Every child is checked exactly against the budget
before it is returned (a rejected child is replaced, never proposed), and its moves (move a softmax
block, add or drop one) keep most children feasible, so no trial is spent outside the budget.
Like Optuna's own samplers it keeps no state of its own: the population is derived from
`study.get_trials()` and the random stream from (seed, trial number), so a study reloaded from its
storage continues exactly where it stopped.
`UniformFeasibleSampler` is exactly uniform over the feasible patterns not tried yet (the reference
any search must beat); the evolution sampler holds one for its start."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sola_search.space.budget import Budget
from sola_search.space.cost import cost_table
from sola_search.space.feasible import FeasibleSet
from sola_search.space.variants import Variant, get_variant

LAYER_CHOICES: tuple[str, str] = ("linear", "softmax")


def block_param_names(variant: str | Variant) -> list[str]:
    """One parameter name per block in network order: `s<stage>b<block>`, 1-based as in the text
    form `LL-LS-…`, block numbers zero-padded only when a stage has ten or more blocks (so a
    dashboard sorts them in network order)."""
    v = get_variant(variant)
    width = len(str(max(v.depths)))
    return [f"s{i + 1}b{j + 1:0{width}d}" for i, d in enumerate(v.depths) for j in range(d)]


class BudgetCheck:
    """`Budget.violations` on 0/1 block vectors, without building a `Pattern` (samplers test hundreds
    of candidates per proposal)."""

    def __init__(self, variant: str | Variant, budget: Budget, resolution: int = 224):
        self.variant, self.budget, self.resolution = get_variant(variant), budget, resolution
        self.table = cost_table(self.variant, resolution)
        self.max_softmax = budget.softmax_limit(self.variant.num_blocks)

    def violations(self, bits: np.ndarray) -> dict[str, float]:
        """`Budget.violations` of the pattern: recorded with `trial.set_constraint`."""
        return self.budget.violations(self.budget.costs(self.table, bits))

    def admits(self, bits: np.ndarray) -> bool:
        return self.budget.within(self.budget.costs(self.table, bits))


def _nondominated_ranks(loss: np.ndarray) -> np.ndarray:
    """Pareto rank of each row (0 = non-dominated), all objectives minimised."""
    n = len(loss)
    le = (loss[:, None, :] <= loss[None, :, :]).all(-1)
    lt = (loss[:, None, :] < loss[None, :, :]).any(-1)
    dominates = le & lt  # [i, j]: i dominates j
    ranks = np.full(n, -1)
    left = np.ones(n, bool)
    r = 0
    while left.any():
        dominated = dominates[np.ix_(left, left)].any(0)
        idx = np.flatnonzero(left)
        front = idx[~dominated]
        ranks[front] = r
        left[front] = False
        r += 1
    return ranks


def _crowding(loss: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one front (boundary points infinite)."""
    n, m = loss.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(loss[:, k], kind="stable")
        span = loss[order[-1], k] - loss[order[0], k]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (loss[order[2:], k] - loss[order[:-2], k]) / span
    return dist


class _BlockSampler(BaseSampler):
    """The Optuna side of a sampler that proposes whole patterns: one categorical per block
    (`block_param_names`), all of them from one 0/1 vector (`propose`). Enqueued trials
    (`study.enqueue_trial`, e.g. baselines) keep their fixed parameters."""

    def __init__(self, variant: str | Variant, budget: Budget, resolution: int = 224, *, seed: int | None = None):
        self.check = BudgetCheck(variant, budget, resolution)
        self.variant = self.check.variant
        self.param_names = block_param_names(self.variant)
        self.seed = seed
        self._fallback = RandomSampler(seed=seed)
        self._space = {name: CategoricalDistribution(LAYER_CHOICES) for name in self.param_names}

    @abstractmethod
    def propose(self, study: Study, trial: FrozenTrial) -> np.ndarray:
        """The 0/1 block vector for `trial`, derived only from the study's trials and the seed."""

    # --- what Optuna calls --------------------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._space)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space or trial.system_attrs.get("fixed_params"):
            return {}
        bits = self.propose(study, trial)
        return {name: LAYER_CHOICES[int(b)] for name, b in zip(self.param_names, bits, strict=True)}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        """Parameters the encoding does not own (none today) are sampled at random."""
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        """Nothing to reseed: each proposal's stream is derived from (seed, trial number)."""

    # --- the study as the sampler sees it -----------------------------------------------------------
    def rng(self, trial_number: int) -> np.random.Generator:
        """The trial's own random stream: reproducible after a reload, independent across workers."""
        return np.random.default_rng(None if self.seed is None else [self.seed, trial_number])

    def tried(self, study: Study, trial: FrozenTrial) -> list[tuple[tuple[int, ...], FrozenTrial]]:
        """Every other trial of the study (of any state, queued ones included) with its 0/1 vector."""
        out = []
        for t in study.get_trials(deepcopy=False):
            params = t.system_attrs.get("fixed_params") or t.params
            if t.number != trial.number and all(name in params for name in self.param_names):
                out.append((tuple(int(params[name] == LAYER_CHOICES[1]) for name in self.param_names), t))
        return out


class UniformFeasibleSampler(_BlockSampler):
    """Exactly uniform over the feasible patterns not tried yet: random search inside the budget (the
    reference any search must beat), and the start of `FeasibleEvolutionSampler`."""

    def __init__(self, variant: str | Variant, budget: Budget, resolution: int = 224, *, seed: int | None = None):
        super().__init__(variant, budget, resolution, seed=seed)
        self._feasible: FeasibleSet | None = None

    @property
    def feasible(self) -> FeasibleSet:
        if self._feasible is None:
            self._feasible = FeasibleSet(self.variant, self.check.budget, self.check.resolution)
        return self._feasible

    def propose(self, study: Study, trial: FrozenTrial) -> np.ndarray:
        return self.draw(self.rng(trial.number), {bits for bits, _ in self.tried(study, trial)})

    def draw(self, rng: np.random.Generator, seen: set[tuple[int, ...]]) -> np.ndarray:
        """Exactly uniform over the feasible patterns not in `seen` (over all of them once every
        feasible pattern has been tried; a budget that admits none is a `SolaError`)."""
        fs = self.feasible
        total = fs.count()
        if total > 4 * len(seen) or total > 200_000:
            for _ in range(64):  # rejection: uniform over the untried ones
                for bits in fs.sample_bits(16, rng):
                    if tuple(int(b) for b in bits) not in seen:
                        return bits
        every = fs.enumerate_bits(limit=200_000)
        fresh = [b for b in every if tuple(int(x) for x in b) not in seen]
        # Exhausted: a repeat, uniform over all of them (`sample_bits` draws as `every[integers(total)]`).
        return fresh[rng.integers(len(fresh))].copy() if fresh else fs.sample_bits(1, rng)[0]


class FeasibleEvolutionSampler(_BlockSampler):
    """Steady-state NSGA-II-style evolution over the block parameters that never leaves the budget.

    - Until `POPULATION_SIZE` distinct feasible patterns are complete, proposals come from the
      `UniformFeasibleSampler` it holds (as Optuna's TPE holds a `RandomSampler` for its start).
    - Then the elite is the best `POPULATION_SIZE` completed patterns by Pareto rank and crowding
      distance; a parent is the winner of a binary tournament; with `CROSSOVER_PROB` a second parent
      is mixed in (blocks both share stay, the rest are drawn from where either has softmax, keeping
      one parent's count); then one move (each further one with `EXTRA_MOVE_PROB`): shift a softmax
      block within its stage, swap it anywhere, add one, drop one. Settings measured in
      bench/sampler_encodings.py (docs/performance.md).
    - A child is returned only if the budget admits it and no trial of the study (of any state,
      queued ones included) has that pattern; after `MAX_ATTEMPTS` rejections, a uniform feasible
      pattern not yet tried. Only when the budget admits no untried pattern does it repeat one."""

    POPULATION_SIZE = 8
    CROSSOVER_PROB = 0.5
    EXTRA_MOVE_PROB = 0.0  # still drawn once a child: the random stream the measured runs used
    MAX_ATTEMPTS = 200

    def __init__(self, variant: str | Variant, budget: Budget, resolution: int = 224, *, seed: int | None = None):
        super().__init__(variant, budget, resolution, seed=seed)
        self.uniform = UniformFeasibleSampler(self.variant, budget, resolution, seed=seed)
        self._stage = np.repeat(np.arange(len(self.variant.depths)), self.variant.depths)

    def propose(self, study: Study, trial: FrozenTrial) -> np.ndarray:
        rng = self.rng(trial.number)
        seen: set[tuple[int, ...]] = set()
        done: dict[tuple[int, ...], Sequence[float]] = {}
        for bits, t in self.tried(study, trial):
            seen.add(bits)
            if (t.state == TrialState.COMPLETE and t.values is not None and bits not in done
                    and all(c <= 0 for c in t.constraints.values())):
                done[bits] = t.values
        if len(done) < self.POPULATION_SIZE:
            return self.uniform.draw(rng, seen)
        signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
        pop = np.array(list(done), np.int8)
        loss = np.array([list(v) for v in done.values()], float) * signs
        elite, rank, crowd = self._elite(loss)
        pop = pop[elite]

        def parent() -> np.ndarray:
            i, j = rng.integers(len(pop), size=2)
            better = i if (rank[i], -crowd[i]) <= (rank[j], -crowd[j]) else j
            return pop[better].copy()

        for _ in range(self.MAX_ATTEMPTS):
            child = parent()
            if rng.random() < self.CROSSOVER_PROB:
                child = self._crossover(rng, child, parent())
            child = self._mutate(rng, child)
            if tuple(int(b) for b in child) not in seen and self.check.admits(child):
                return child
        return self.uniform.draw(rng, seen)

    def _elite(self, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices of the best `POPULATION_SIZE` rows by (rank, −crowding), with their rank and crowding."""
        ranks = _nondominated_ranks(loss)
        crowd = np.zeros(len(loss))
        for r in np.unique(ranks):
            idx = np.flatnonzero(ranks == r)
            crowd[idx] = _crowding(loss[idx])
        order = np.lexsort((-crowd, ranks))[: self.POPULATION_SIZE]
        return order, ranks[order], crowd[order]

    def _crossover(self, rng: np.random.Generator, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        common = a & b
        pool = np.flatnonzero(a ^ b)
        k = int((a if rng.random() < 0.5 else b).sum()) - int(common.sum())
        child = common.copy()
        if k > 0 and len(pool):
            child[rng.choice(pool, size=min(k, len(pool)), replace=False)] = 1
        return child

    def _mutate(self, rng: np.random.Generator, bits: np.ndarray) -> np.ndarray:
        """One move, and each further one with `EXTRA_MOVE_PROB`; each one of: `shift` a softmax block
        to a linear block of its own stage (same MACs: explores placement at a fixed cost), `swap` it
        anywhere, `add`, `drop`."""
        bits = bits.copy()
        n_moves = 1
        while rng.random() < self.EXTRA_MOVE_PROB:
            n_moves += 1
        for _ in range(n_moves):
            on, off = np.flatnonzero(bits), np.flatnonzero(bits == 0)
            moves: list[str] = []
            if len(on) and len(off):
                moves += ["shift", "shift", "swap", "swap"]
            if len(off) and len(on) < self.check.max_softmax:
                moves.append("add")
            if len(on):
                moves.append("drop")
            if not moves:
                break
            move = moves[rng.integers(len(moves))]
            if move == "shift":
                i = rng.choice(on)
                same = off[self._stage[off] == self._stage[i]]
                move = "swap" if not len(same) else move
                if len(same):
                    bits[i], bits[rng.choice(same)] = 0, 1
            if move in ("swap", "drop"):
                bits[rng.choice(on)] = 0
            if move in ("swap", "add"):
                bits[rng.choice(off)] = 1
        return bits


__all__ = ["LAYER_CHOICES", "BudgetCheck", "FeasibleEvolutionSampler", "UniformFeasibleSampler",
           "block_param_names"]
