"""`Budget`: what a search may spend — `8softmax`, `2.5gmacs`, `5gflops`, `20mparams`, `12ms`, comma-joined.

Each kind of limit is one `Term` in `TERMS`: the cost it bounds (as `CostTable.costs` names it), its
units in budget text and how it is shown. `Budget.violations` is the one budget test: every place that
asks whether something is within a budget (`admits`, the samplers' `BudgetCheck`, the Pareto front,
`export --pick under:`) compares through it, so a new kind of limit is one entry here, one `Budget`
field and its cost."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sola_search.errors import SolaError
from sola_search.space.cost import CostTable, cost_table
from sola_search.space.pattern import Pattern
from sola_search.space.variants import Variant


@dataclass(frozen=True)
class Term:
    """One kind of limit. `units` maps each unit a budget may be written in to how much of `cost` one
    of it is; the first is the unit it is shown and measured in (`str(budget)`, `violations`)."""

    field: str  # the `Budget` field that holds the limit
    cost: str  # what a pattern spends, as `CostTable.costs` and the trial attributes name it
    units: dict[str, float]
    whole: bool = False  # a count: written as a whole number, 0 allowed
    rounded: bool = True  # the cost is a whole number (MACs, params): the limit is rounded to one

    @property
    def unit(self) -> str:
        return next(iter(self.units))


TERMS: tuple[Term, ...] = (
    Term("max_softmax", "softmax_layers", {"softmax": 1}, whole=True),
    Term("max_macs", "macs", {"gmacs": 1e9, "gflops": 0.5e9}),  # FLOPs = 2 × MACs
    Term("max_params", "params", {"mparams": 1e6}),
    # Measured: priced by the latency table the budget carries (`Budget.priced`), in milliseconds.
    Term("max_ms", "latency_ms", {"ms": 1}, rounded=False),
)
_UNITS = {unit: term for term in TERMS for unit in term.units}
_TERM = re.compile(rf"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)({'|'.join(_UNITS)})$")  # ASCII digits: not \d
# Longer numbers are refused before conversion: float() would overflow to inf and int() stops at
# 4,300 digits, both with a traceback; no limit needs more than 20 characters.
_MAX_DIGITS = 20
_MAX_LIMIT = 10**15  # in the cost's own units (MACs, params, ms), whichever unit the limit is written in
_EXPECTED = (f"expected a number followed by {', '.join(list(_UNITS)[:-1])} or {list(_UNITS)[-1]}, "
             "comma-joined (e.g. 8softmax,2.5gmacs)")


@dataclass(frozen=True)
class Budget:
    """Every limit that is set must hold. MACs are counted on the full model at the search resolution."""

    max_softmax: int | None = None
    max_macs: int | None = None
    max_params: int | None = None
    max_ms: float | None = None
    # The `LatencyTable` that prices an `ms` limit (`priced`): not part of the budget's identity.
    latency: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Budget:
        if not isinstance(text, str) or not text.strip():
            raise SolaError(f"empty budget: {_EXPECTED}")
        limits: dict[str, int] = {}
        for part in "".join(text.lower().split()).split(","):
            m = _TERM.match(part)
            if not m:
                raise SolaError(f"budget term {_shown(part)} not understood: {_EXPECTED}")
            number, unit = m.groups()
            if len(number) > _MAX_DIGITS:
                raise SolaError(f"budget term {_shown(part)} ({len(number):,} characters): too long a number "
                                f"(at most {_MAX_DIGITS} characters)")
            term = _UNITS[unit]
            if term.field in limits:
                raise SolaError(f"budget {_shown(text)} limits {term.field.removeprefix('max_')} twice: "
                                "expected each kind once")
            if term.whole:
                if "." in number:
                    raise SolaError(f"budget term {part!r}: the {unit} count must be a whole number")
                limits[term.field] = min(int(number), 10**6)  # more than any variant has blocks: no limit
            else:
                value = float(number) * term.units[unit]
                value = round(value) if term.rounded else value
                if value <= 0:
                    raise SolaError(f"budget term {part!r}: expected a positive limit")
                if value > _MAX_LIMIT:  # counts are int64 further on; no backbone comes near
                    raise SolaError(f"budget term {part!r}: too large a limit (at most "
                                    f"{_MAX_LIMIT / term.units[unit]:g} {unit})")
                limits[term.field] = value
        return cls(**limits)

    def __str__(self) -> str:
        return ",".join(f"{limit / t.units[t.unit]:.15g}{t.unit}" for t, limit in self._limits()) or "unlimited"

    def _limits(self) -> list[tuple[Term, int]]:
        """The terms this budget sets, with their limits, in `TERMS` order."""
        return [(t, getattr(self, t.field)) for t in TERMS if getattr(self, t.field) is not None]

    def violations(self, costs: Mapping[str, float | None]) -> dict[str, float]:
        """Cost minus limit for each limit the budget sets, in its shown unit (`softmax`, `gmacs`,
        `mparams`): ≤ 0 is within it. `costs` holds what is spent by cost name (`CostTable.costs`, a
        trial's attributes, a row of `trials_frame`); a cost it lacks (missing, None, NaN) gives NaN,
        which is neither within nor over. These are the values recorded with `trial.set_constraint`,
        so a constrained sampler learns how far outside a proposal was."""
        out = {}
        for t, limit in self._limits():
            spent = costs.get(t.cost)
            out[t.unit] = float("nan") if spent is None else (spent - limit) / t.units[t.unit]
        return out

    def priced(self, latency: Any) -> Budget:
        """This budget with the latency table (or None) that prices its `ms` limit; an `ms` limit
        without a table is a one-line error: only a measured table says what a pattern's ms are."""
        if self.max_ms is not None and latency is None:
            raise SolaError(f"budget {self}: a latency limit (ms) needs a latency table, which only run takes "
                            "(--latency FILE, made by sola-search latency)")
        return replace(self, latency=latency)

    def costs(self, table: CostTable, bits: np.ndarray | tuple[int, ...]) -> dict[str, float]:
        """What the pattern with these 0/1 block choices spends: the cost table's costs, and its
        predicted milliseconds where the budget carries a latency table."""
        out: dict[str, float] = table.costs(bits)
        if self.latency is not None:
            out["latency_ms"] = float(self.latency.ms_many(np.asarray(bits)))
        elif self.max_ms is not None:
            self.priced(None)  # raises: the limit cannot be priced
        return out

    def within(self, costs: Mapping[str, float | None]) -> bool:
        """Whether `costs` are within every limit: each violation ≤ 0 (an unknown cost is not)."""
        return all(v <= 0 for v in self.violations(costs).values())

    def admits(self, pattern: Pattern, variant: str | Variant, resolution: int = 224) -> bool:
        """Whether the full model of `variant` with `pattern` at `resolution` is within every limit."""
        pattern.check(variant)  # a pattern that does not fit the variant has no cost to compare
        return self.within(self.costs(cost_table(variant, resolution), pattern.bits))

    def softmax_limit(self, num_blocks: int) -> int:
        """The most softmax blocks a pattern of `num_blocks` blocks may have under this budget."""
        return num_blocks if self.max_softmax is None else min(self.max_softmax, num_blocks)


def _shown(text: str, limit: int = 40) -> str:
    """A term as a message shows it: a hostile 5,000-character one would fill the screen."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 12] + "…" + text[-11:])
