"""Shared test fixtures: kept small on purpose."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator, so random patterns are the same on every run."""
    return np.random.default_rng(20261128)
