"""What can be searched and what it costs: variants, patterns, budgets, exact cost, feasible sets,
baselines and the backbone built from a pattern. Pure and fast; no I/O beyond reading a pattern file.
The backbone (torch, timm) loads on first use, so that `sola-search show` and `space` start at once."""

from sola_search.space.baselines import baseline, baselines, pattern_file_defaults, resolve, resolve_pattern
from sola_search.space.budget import Budget
from sola_search.space.cost import Cost, CostTable, cost_table, model_cost
from sola_search.space.feasible import FeasibleSet
from sola_search.space.pattern import Pattern
from sola_search.space.variants import VARIANTS, Variant, get_variant

__all__ = [
    "VARIANTS", "Budget", "Cost", "CostTable", "FeasibleSet", "Pattern", "SolaVision", "Variant", "baseline",
    "baselines", "build_backbone", "cost_table", "get_variant", "model_cost", "pattern_file_defaults", "resolve",
    "resolve_pattern",
]


def __getattr__(name: str):
    if name in ("SolaVision", "build_backbone"):
        from sola_search.space import backbone

        return getattr(backbone, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
