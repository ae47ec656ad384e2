"""What a search found: pattern files, the Pareto front, hypervolume and knee, reports, plots, export.

Names load lazily, so `import sola_search` (which exports `load_backbone`) does not pull in pandas,
Optuna or plotting libraries."""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "SCHEMA": "patterns", "VERSION": "patterns", "load_pattern_file": "patterns", "write_pattern_file": "patterns",
    "make_pattern_record": "patterns", "pattern_record_from_trial": "patterns", "validate_pattern_record": "patterns",
    "pareto_mask": "front", "hypervolume": "front", "trials_frame": "front", "pareto_front": "front",
    "knee": "front", "reference_point": "front", "front_hypervolume": "front",
    "Run": "runs", "open_run": "runs", "find_runs": "runs",
    "FrontReport": "report", "front_report": "report", "plot": "report",
    "pick_trial": "export", "export_pattern": "export", "load_backbone": "export",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"sola_search.results.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'sola_search.results' has no attribute {name!r}")
