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


@pytest.fixture
def shared_ray():
    """One local Ray instance for the in-process searches of the whole session, started on first use:
    starting one took 8-25 s, once per search. `ray_session` uses a Ray the caller has running and
    leaves it up; its own start, reaper and shutdown are what the subprocess (kill -9, Ctrl-C) tests run."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=True)
    return ray


@pytest.fixture
def no_ray():
    """Tests that start Ray their own way (joining a cluster by address): the shared instance is
    stopped first (the next `shared_ray` starts it again)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
