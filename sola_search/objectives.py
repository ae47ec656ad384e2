"""The objectives a run optimises, in one table: the study's metric names and directions, how the
search loop computes each one, and how the front, reports, plots, pattern files and the CLI show it.

Adding an objective (`latency_ms`, say) is one entry in `OBJECTIVES` plus its computation (a field
of `Measured` if it needs more than the pattern, its cost and its proxy result). A run stores its
objectives in the study (`study.set_metric_names`), so a run made with other objectives reads back
as it was made. The front, hypervolume and knee handle two objectives, whatever they are."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sola_search.errors import SolaError
from sola_search.space.budget import Budget
from sola_search.space.cost import CostTable, cost_table
from sola_search.space.pattern import Pattern


@dataclass(frozen=True)
class Measured:
    """What an objective is computed from, for one pattern a worker trained."""

    pattern: Pattern
    result: dict[str, Any]  # the worker's ProxyResult, as a dict
    table: CostTable  # the full model's cost at the search resolution
    latency: Any = None  # the run's LatencyTable (`run --latency FILE`), None without one


@dataclass(frozen=True)
class Space:
    """The search space a reference point is taken in: what a study's attributes name."""

    variant: str
    resolution: int
    budget: Budget | None


@dataclass(frozen=True)
class Objective:
    name: str  # the study's metric name; the column of the trials frame, CSV and JSON
    direction: str  # 'maximize' or 'minimize'
    key: str  # in derived keys: best_<key>, ref_<key>
    short: str  # its name in prose: 'top-1'
    column: str  # a table's header
    axis: str  # a plot's axis label
    text: str  # a value in prose, e.g. 'top-1 {:.2%}'
    ref_text: str  # a reference value in prose
    scale: float  # a table cell shows value × scale ...
    digits: int  # ... with this many decimals
    compute: Callable[[Measured], float]  # the value the search loop tells the study
    # The value a trial's user attributes give, also for a failed trial (None: only a completed trial
    # has it, as its study value).
    from_attrs: Callable[[dict], float | None] = lambda attrs: None
    # The hypervolume reference: a value no feasible trial of the space is worse than (None: taken
    # from the trials, REF_MARGIN × the worst one).
    reference: Callable[[Space], float] | None = None
    # A value in a trial's progress line, which keeps the form the line always had (None: `text`).
    line: str | None = None
    # Measured by the proxy training, so it varies with the seed: a run with several seeds (`run
    # --seeds K`) tells the study the mean and keeps each seed's value (`seeds_name`) and the mean's
    # standard error (`se_name`) as trial attributes. A cost is the same for every seed.
    seeded: bool = False

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def se_name(self) -> str:
        """The trial attribute (and trials-frame, CSV and JSON column) of the mean's standard error."""
        return f"{self.name}_se"

    @property
    def seeds_name(self) -> str:
        """The trial attribute (and pattern file metric) of each seed's value."""
        return f"{self.name}_seeds"

    def cell(self, value: float | None, se: float | None = None) -> str:
        """A table cell; with a standard error (a run with seeds) `70.30 ± 0.12`."""
        if value is None or value != value:
            return "—"
        text = f"{value * self.scale:.{self.digits}f}"
        return text if se is None or se != se else f"{text} ± {se * self.scale:.{self.digits}f}"

    def show(self, value: float | None, line: bool = False, se: float | None = None) -> str:
        """A value in prose (`line`: in a trial's progress line); '—' for a value not known (NaN);
        with a standard error, `top-1 70.30% ± 0.12`."""
        text = self.line or self.text if line else self.text
        if value is None or value != value:
            return re.sub(r"\{[^}]*\}", "—", text)
        if se is None or se != se:
            return text.format(value)
        spec = re.search(r"\{:([^}]*)\}", text).group(1)  # the standard error in the value's own form
        return f"{text.format(value)} ± {format(se, spec)}"


def standard_error(values: Sequence[float]) -> float:
    """The standard error of the mean of several seeds' values: sample standard deviation / √n."""
    return statistics.stdev(values) / math.sqrt(len(values))


def over_seeds(objectives: Sequence[Objective], measured: Sequence[Measured]) -> tuple[dict[str, float], dict]:
    """What one pattern's runs with one or more seeds give: each objective's value for the study (a
    seeded objective's mean over the seeds; another's from the first run, the same for all) and,
    with more than one seed, the trial attributes that keep the spread (`se_name`, `seeds_name`).
    One seed gives its run's values as they are, and no attribute."""
    values, attrs = {}, {}
    for o in objectives:
        if not o.seeded or len(measured) == 1:
            values[o.name] = o.compute(measured[0])
            continue
        each = [o.compute(m) for m in measured]
        values[o.name] = statistics.fmean(each)
        attrs[o.se_name], attrs[o.seeds_name] = standard_error(each), each
    return values, attrs


def companion_scores(objectives: Sequence[Objective], results: Sequence[dict] = ()) -> list[Objective]:
    """The proxy scores a run measures but does not rank by (val_loss for a top-1 run, val_top1 for a
    loss run), those every one of `results` (proxy results) holds as a number: kept per seed beside
    the objectives, so that a pattern file's other score is the same seeds' mean, not the first's."""
    names = {o.name for o in objectives}
    return [OBJECTIVES[n] for n in SCORE_OBJECTIVES.values() if n not in names
            and all(isinstance(r.get(n), int | float) and not isinstance(r.get(n), bool) for r in results)]


def _macs_to_gmacs(attrs: dict) -> float | None:
    macs = attrs.get("macs")
    return macs / 1e9 if isinstance(macs, int | float) and not isinstance(macs, bool) else None


def _latency_attr(attrs: dict) -> float | None:
    ms = attrs.get("latency_ms")
    return float(ms) if isinstance(ms, int | float) and not isinstance(ms, bool) else None


def _latency_ms(m: Measured) -> float:
    if m.latency is None:
        raise SolaError("objective latency_ms needs a latency table: pass --latency FILE (made by sola-search latency)")
    return m.latency.ms(m.pattern)


def max_gmacs(variant: str, resolution: int, budget: Budget | None = None) -> float:
    """The GMACs of the most expensive pattern of a variant at a resolution that the budget admits:
    cost is additive, so it is every positive softmax-minus-linear block delta, the largest first, up
    to the softmax limit, capped by a MACs limit. An upper bound on any feasible trial's cost."""
    t = cost_table(variant, int(resolution))
    deltas = np.sort(t.delta)[::-1]
    deltas = deltas[deltas > 0]
    if budget is not None and budget.max_softmax is not None:
        deltas = deltas[: budget.max_softmax]
    macs = t.all_linear_macs + int(deltas.sum())
    if budget is not None and budget.max_macs is not None:
        macs = min(macs, budget.max_macs)
    return macs / 1e9


# A reference above a cost: 1.1 × the most expensive value the space (or the trials) hold.
REF_MARGIN = 1.1

OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("val_top1", "maximize", key="top1", short="top-1", column="top-1 %", axis="proxy val top-1 (%)",
              text="top-1 {:.2%}", ref_text="top-1 {:g}", scale=100, digits=2, line="top-1 {:.4f}",
              compute=lambda m: float(m.result["val_top1"]), seeded=True,
              reference=lambda space: 0.0),  # the worst possible accuracy, the same for every run
    # `run --score loss`: on Fashion-MNIST the validation loss ranked patterns more alike between seeds than
    # top-1 (docs/performance.md); no worst value bounds it, so the hypervolume reference comes from the trials.
    Objective("val_loss", "minimize", key="loss", short="val loss", column="val loss", axis="proxy val loss",
              text="val loss {:.4f}", ref_text="val loss {:g}", scale=1, digits=4, line="loss {:.4f}",
              compute=lambda m: float(m.result["val_loss"]), seeded=True),
    Objective("gmacs", "minimize", key="gmacs", short="GMACs", column="GMACs", axis="GMACs (full model)",
              text="{:.3f} GMACs", ref_text="{:.3f} GMACs", scale=1, digits=3,
              compute=lambda m: m.table.macs(m.pattern) / 1e9, from_attrs=_macs_to_gmacs,
              reference=lambda space: REF_MARGIN * max_gmacs(space.variant, space.resolution, space.budget)),
    # Predicted by a measured table (space/latency.py); the hypervolume reference comes from the trials.
    Objective("latency_ms", "minimize", key="latency_ms", short="latency", column="latency ms",
              axis="latency (ms per batch, measured table)", text="{:.3f} ms", ref_text="{:.3f} ms", scale=1,
              digits=3, compute=_latency_ms, from_attrs=_latency_attr),
)}
# `run --objective NAME`: the run's second objective, the cost it trades top-1 against.
COST_OBJECTIVES = {"gmacs": "gmacs", "latency": "latency_ms"}
# `run --score NAME`: the run's first objective, what it ranks patterns by.
SCORE_OBJECTIVES = {"top1": "val_top1", "loss": "val_loss"}
# What a run optimises unless it says otherwise, and what a study that stored no metric names optimised.
DEFAULT_OBJECTIVES = ("val_top1", "gmacs")


def get_objectives(names: Sequence[str] | None = None) -> tuple[Objective, Objective]:
    """The objectives of these names (default: DEFAULT_OBJECTIVES): two different ones; a plot draws
    the first up its y axis and the second along its x axis."""
    names = tuple(names or DEFAULT_OBJECTIVES)
    unknown = [n for n in names if not isinstance(n, str) or n not in OBJECTIVES]
    if unknown:
        raise SolaError(f"unknown objective {unknown[0]!r}: expected one of {', '.join(OBJECTIVES)}")
    if len(names) != 2 or len(set(names)) != 2:
        raise SolaError(f"objectives {', '.join(names)}: expected two different ones")
    return OBJECTIVES[names[0]], OBJECTIVES[names[1]]


def study_objectives(study: Any) -> tuple[Objective, Objective]:
    """The objectives a study stores (its metric names and directions); a study that is not
    sola-search's is an error. A study without metric names is read as DEFAULT_OBJECTIVES."""
    directions = [d.name.lower() for d in study.directions]
    names = list(study.metric_names or DEFAULT_OBJECTIVES)
    if len(names) != 2 or len(directions) != 2 or any(n not in OBJECTIVES for n in names):
        raise SolaError(f"study {study.study_name!r} has objectives {names}, expected two of "
                        f"{', '.join(OBJECTIVES)} (is it a sola-search study?)")
    objectives = tuple(OBJECTIVES[n] for n in names)
    if [o.direction for o in objectives] != directions:
        want = " and ".join(f"{o.name} {o.direction}d" for o in objectives)
        raise SolaError(f"study {study.study_name!r}: expected {want}, found {' and '.join(directions)}")
    return objectives  # type: ignore[return-value]
