"""Shared test fixtures: kept small on purpose."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator, so random patterns are the same on every run."""
    return np.random.default_rng(20261128)


@pytest.fixture(scope="session")
def npz_data(tmp_path_factory) -> str:
    """A small learnable 10-class dataset for real runs: each class brightens its own band of rows."""
    rng = np.random.default_rng(0)
    y = np.arange(400) % 10
    x = rng.integers(0, 60, (400, 16, 16)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, c : c + 4] += 150
    path = tmp_path_factory.mktemp("data") / "bands.npz"
    np.savez(path, x=x, y=y)
    return f"npz:{path}"
