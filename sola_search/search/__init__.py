"""Which patterns to try: the Optuna study, budget-aware encodings, dispatch on Ray, failures, resume."""

from sola_search.search.config import SearchConfig, parse_duration
from sola_search.search.runner import RunSummary, resume_search, run_search

__all__ = ["RunSummary", "SearchConfig", "parse_duration", "resume_search", "run_search"]
