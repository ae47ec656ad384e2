"""Shared test fixtures: kept small on purpose."""

import os

import numpy as np
import pytest

# Threads that spin waiting for a busy core: with a torch thread per core in a test process, beside a Ray
# worker or the other test process of CI's two (pytest-xdist) on its two cores, a training that takes 2.5 s
# alone took 72 s (docs/performance.md, "The test suite on two cores"). So a test process trains on one
# thread, and under xdist the session's Ray instance has one CPU, which its workers take as their threads.
# (The proxies' results, rounded as they are reported, are the same on one thread or two.)
SHARED_RAY_CPUS = 1 if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 else None


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


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


def _ray_up():
    import ray

    if not ray.is_initialized():
        ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=True, num_cpus=SHARED_RAY_CPUS)
    return ray


@pytest.fixture
def shared_ray():
    """One local Ray instance for the in-process searches of the whole session, started on first use:
    starting one took 8-25 s, once per search. `ray_session` uses a Ray the caller has running and
    leaves it up; its own start, reaper and shutdown are what the subprocess (kill -9, Ctrl-C) tests run."""
    return _ray_up()


@pytest.fixture(scope="session")
def plain_run(tmp_path_factory, npz_data):
    """One plain search (micro, 2softmax, quick at 3 steps, seed 0, 4 trials: the 3 baselines and one
    proposal) that a search in packs is compared with (test_search). Read it, never resume it."""
    from sola_search.search import SearchConfig, run_search

    _ray_up()
    runs = tmp_path_factory.mktemp("plain") / "runs"
    summary = run_search(SearchConfig(budget="2softmax", variant="micro", trials=4, preset="quick", steps=3,
                                      data=npz_data, name="plain", runs_dir=str(runs), seed=0), quiet=True)
    assert summary.completed == 4 and summary.failed == 0
    return runs / "plain"


@pytest.fixture
def no_ray():
    """Tests that start Ray their own way (joining a cluster by address): the shared instance is
    stopped first (the next `shared_ray` starts it again)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
