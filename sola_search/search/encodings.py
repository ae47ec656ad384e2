"""Budget-aware encodings: how a pattern becomes Optuna parameters and back, so that no pattern
outside the budget ever reaches a worker.

A soft constraint alone wastes trials on large spaces (an exact-sum constraint needed ~10,000
NSGA-II trials in optuna#3399), so the search loop asks through an `Encoding`:

    budget = Budget.parse("8softmax")
    encoding = get_encoding(DEFAULT_ENCODING, "small", budget, 224)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=encoding.sampler(seed))
    enqueue_baselines(study, baselines("small", budget, 224), encoding)
    trial = study.ask()
    pattern = encoding.suggest(trial)  # None: outside the budget

The rule for the loop (`SearchLoop.ask`): `encoding.suggest(trial)` returns the trial's pattern, or
None when the proposal is outside the budget. A None trial is never trained: tell it
`TrialState.PRUNED`. Its constraint values (`trial.set_constraint`, Optuna 5) are already recorded, so
TPE learns where the budget ends — TPE reads PRUNED trials and ranks infeasible ones by their total
violation; FAIL trials it would ignore — and `study.best_trials` leaves it out.

Encodings (`ENCODINGS`, the one registry; `DEFAULT_ENCODING` is chosen by `bench/sampler_encodings.py`, see
docs/performance.md). A new one is a subclass of `Encoding` added to `ENCODINGS`:
- `evolution`: one categorical per block (`s1b1` … `s4b3`: "linear"/"softmax"),
  `FeasibleEvolutionSampler`; only feasible, untried patterns.
- `blocks`: the same parameters, Optuna's TPE (multivariate: Optuna's multi-objective default,
  independent TPE, collapses onto a few patterns here) with the budget as constraints; may
  propose infeasible patterns (told PRUNED, never trained).
- `keys`: random keys: `softmax_layers` (how many) and one float `key_s1b1` … per block; the
  blocks with the highest keys are softmax; over the MAC limit, the highest keys that fit.
  Multivariate TPE; only feasible patterns.
- `random`: the block parameters drawn exactly uniformly from the feasible patterns not tried yet.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import TrialState

from sola_search.errors import SolaError
from sola_search.search.samplers import (
    LAYER_CHOICES,
    BudgetCheck,
    FeasibleEvolutionSampler,
    UniformFeasibleSampler,
    block_param_names,
)
from sola_search.space.budget import Budget
from sola_search.space.feasible import FeasibleSet
from sola_search.space.pattern import Pattern
from sola_search.space.variants import Variant, get_variant

DEFAULT_ENCODING = "evolution"


class Encoding(ABC):
    """What the search loop needs from an encoding: a sampler for the study, a define-by-run `suggest`
    that returns the trial's pattern (None: outside the budget, tell it PRUNED), and `params`, the
    parameters that `suggest` turns back into a given pattern (how baselines are queued). Built on a
    budget that admits at least one pattern."""

    name: ClassVar[str]

    def __init__(self, variant: str | Variant, budget: Budget | str, resolution: int = 224):
        self.budget = Budget.parse(budget) if isinstance(budget, str) else budget
        self.variant, self.resolution = get_variant(variant), resolution
        self.feasible = FeasibleSet(self.variant, self.budget, resolution).nonempty()
        self.check = BudgetCheck(self.variant, self.budget, resolution)
        self.block_names = block_param_names(self.variant)

    @abstractmethod
    def sampler(self, seed: int | None = None) -> BaseSampler: ...

    @abstractmethod
    def suggest(self, trial: optuna.Trial) -> Pattern | None: ...

    @abstractmethod
    def params(self, pattern: Pattern) -> dict[str, Any]: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.variant.name!r}, {str(self.budget)!r}, {self.resolution})"

    def _finish(self, trial: optuna.Trial, bits: Sequence[int] | np.ndarray) -> Pattern | None:
        """Record the pattern and its budget slack on the trial; None if the budget refuses it."""
        bits = np.asarray(bits, np.int8)
        pattern = Pattern.from_bits(bits, self.variant)
        trial.set_user_attr("pattern", str(pattern))
        violations = self.check.violations(bits)
        for key, value in violations.items():
            trial.set_constraint(key, value)
        if self.check.admits(bits):
            return pattern
        over = [f"{k} over by {v:g}" for k, v in violations.items() if v > 0]
        trial.set_user_attr("reason", f"outside the budget {self.budget}: {', '.join(over)}")
        return None

    def pattern_bits(self, pattern: Pattern) -> np.ndarray:
        return np.array(pattern.check(self.variant).bits, np.int8)


class BlocksEncoding(Encoding):
    """One categorical per block, TPE with the budget as constraints: the plain encoding, which can
    propose patterns outside the budget (those are told PRUNED, never trained)."""

    name = "blocks"

    def __init__(self, variant: str | Variant, budget: Budget | str, resolution: int = 224, *,
                 multivariate: bool | None = True):
        super().__init__(variant, budget, resolution)
        self.multivariate = multivariate

    def sampler(self, seed: int | None = None) -> BaseSampler:
        return TPESampler(seed=seed, multivariate=self.multivariate)

    def suggest(self, trial: optuna.Trial) -> Pattern | None:
        bits = [trial.suggest_categorical(name, LAYER_CHOICES) == LAYER_CHOICES[1] for name in self.block_names]
        return self._finish(trial, bits)

    def params(self, pattern: Pattern) -> dict[str, Any]:
        bits = self.pattern_bits(pattern)
        return {name: LAYER_CHOICES[int(b)] for name, b in zip(self.block_names, bits, strict=True)}

    def decode(self, params: Mapping[str, Any]) -> Pattern:
        return Pattern.from_bits([params[n] == LAYER_CHOICES[1] for n in self.block_names], self.variant)


class EvolutionEncoding(BlocksEncoding):
    """The block parameters, proposed by `FeasibleEvolutionSampler`: feasible and untried only."""

    name = "evolution"

    def sampler(self, seed: int | None = None) -> BaseSampler:
        return FeasibleEvolutionSampler(self.variant, self.budget, self.resolution, seed=seed)


class RandomEncoding(BlocksEncoding):
    """The block parameters, exactly uniform over the feasible patterns not tried yet."""

    name = "random"

    def sampler(self, seed: int | None = None) -> BaseSampler:
        return UniformFeasibleSampler(self.variant, self.budget, self.resolution, seed=seed)


class KeysEncoding(Encoding):
    """Random keys: `softmax_layers` = k and a float key per block; the k highest keys are softmax
    (ties: network order); over the MAC limit, the highest keys that fit. Every parameter point decodes
    to a feasible pattern, so any sampler (TPE here) stays inside the budget."""

    name = "keys"
    COUNT = "softmax_layers"

    def __init__(self, variant: str | Variant, budget: Budget | str, resolution: int = 224, *,
                 multivariate: bool | None = True):
        super().__init__(variant, budget, resolution)
        self.key_names = [f"key_{n}" for n in self.block_names]
        self.multivariate = multivariate

    def sampler(self, seed: int | None = None) -> BaseSampler:
        return TPESampler(seed=seed, multivariate=self.multivariate)

    def suggest(self, trial: optuna.Trial) -> Pattern | None:
        k = trial.suggest_int(self.COUNT, 0, self.check.max_softmax)
        keys = [trial.suggest_float(n, 0.0, 1.0) for n in self.key_names]
        return self._finish(trial, self.decode_bits(k, keys))

    def params(self, pattern: Pattern) -> dict[str, Any]:
        bits = self.pattern_bits(pattern)
        return {self.COUNT: int(bits.sum()), **{n: float(b) for n, b in zip(self.key_names, bits, strict=True)}}

    def decode(self, params: Mapping[str, Any]) -> Pattern:
        return Pattern.from_bits(self.decode_bits(params[self.COUNT], [params[n] for n in self.key_names]),
                                 self.variant)

    def decode_bits(self, k: int, keys: Sequence[float]) -> np.ndarray:
        """The k highest keys if the budget admits them (so `params(pattern)` decodes to exactly
        `pattern`); otherwise the repair: blocks in key order, each taken if it still fits, until k."""
        keys = np.asarray(keys, float)
        order = np.argsort(-keys, kind="stable")
        bits = np.zeros(len(keys), np.int8)
        bits[order[:k]] = 1
        if self.check.admits(bits):
            return bits
        bits[:] = 0
        if self.check.admits(bits):  # every step below keeps it feasible
            for i in order:
                if bits.sum() >= k:
                    break
                bits[i] = 1
                if not self.check.admits(bits):
                    bits[i] = 0
            return bits
        # Only when even all-linear exceeds the MAC limit (softmax is cheaper in some late blocks):
        # a feasible pattern drawn uniformly, seeded by the keys so that decoding stays a function.
        seed = int.from_bytes(hashlib.sha256(keys.tobytes() + int(k).to_bytes(4, "little")).digest()[:8], "little")
        return self.feasible.sample_bits(1, seed)[0].astype(np.int8)


ENCODINGS: dict[str, type[Encoding]] = {c.name: c for c in (EvolutionEncoding, BlocksEncoding, KeysEncoding,
                                                              RandomEncoding)}


def encoding_class(name: str) -> type[Encoding]:
    """The encoding registered as `name`: the one check of a sampler's name (before Ray starts, in
    `prepare`, and in `get_encoding`)."""
    if name not in ENCODINGS:
        raise SolaError(f"unknown sampler {name!r}: expected one of {', '.join(ENCODINGS)}")
    return ENCODINGS[name]


def get_encoding(name: str, variant: str | Variant, budget: Budget | str, resolution: int = 224) -> Encoding:
    """The encoding `name` (one of `ENCODINGS`) for a variant, budget and resolution. Fails with a
    `SolaError` when the name is unknown or the budget admits no pattern at all."""
    return encoding_class(name)(variant, budget, resolution)


# A baseline that failed for a reason that may pass (out of memory, a worker's error) is queued again
# by a resumed run, once; one that diverged (`nan`) would diverge again with the same seed, so it is
# not. An interrupted one whose copy was never queued (a driver killed in between) is queued too.
RETRYABLE = ("oom", "error")
RETRY_ON_RESUME = (*RETRYABLE, "interrupted")


def enqueue_baselines(study: optuna.Study, patterns: Mapping[str, Pattern], encoding: Encoding) -> list[str]:
    """Queue each baseline as fixed parameters that `encoding.suggest` turns back into exactly that
    pattern, with user attribute `baseline`; the queue is served before any sampled trial. A
    baseline whose parameters already are in the study (a resumed run) is not queued again, unless
    every trial of them failed with a status in RETRY_ON_RESUME (and at most once out of memory or
    with an error: a retry that fails too is final).
    Returns the names queued now. Raises ValueError for a pattern outside the budget."""
    queued = []
    trials = study.get_trials(deepcopy=False)
    for name, pattern in patterns.items():
        if not encoding.budget.admits(pattern, encoding.variant, encoding.resolution):
            raise ValueError(f"baseline {name} {pattern} is outside the budget {encoding.budget}")
        params = encoding.params(pattern)
        same = [t for t in trials if t.system_attrs.get("fixed_params", t.params) == params]
        attrs = {"baseline": name}
        statuses = [t.user_attrs.get("status") if t.state == TrialState.FAIL else None for t in same]
        if same and all(s in RETRY_ON_RESUME for s in statuses) and sum(s in RETRYABLE for s in statuses) < 2:
            attrs["retry_of"] = same[-1].number
        elif same:
            continue
        study.enqueue_trial(params, user_attrs=attrs)
        queued.append(name)
    return queued


__all__ = ["DEFAULT_ENCODING", "ENCODINGS", "BlocksEncoding", "Encoding", "EvolutionEncoding", "KeysEncoding",
           "RandomEncoding", "block_param_names", "encoding_class", "enqueue_baselines", "get_encoding"]
