"""What a run keeps safe when it is killed, its disk fills up or its study is lost (issue 19): work
it owes is measured, no pattern file is lost or overwritten, and a directory it made resumes. Real
runs (micro, quick, a few steps) on a real local Ray and a real SQLite study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from test_search import _study

from sola_search.search import SearchConfig, resume_search, run_search
from sola_search.space import Budget, baselines


@pytest.fixture(scope="module")
def npz_data(tmp_path_factory) -> str:
    """A small learnable 10-class dataset (as test_search's): each class brightens its band of rows."""
    rng = np.random.default_rng(0)
    y = np.arange(400) % 10
    x = rng.integers(0, 60, (400, 16, 16)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, c : c + 4] += 150
    path = tmp_path_factory.mktemp("data") / "bands.npz"
    np.savez(path, x=x, y=y)
    return f"npz:{path}"


def _config(tmp_path: Path, data: str, **kw) -> SearchConfig:
    base = dict(budget="8softmax", variant="micro", trials=2, preset="quick", steps=3, data=data, name="k",
                runs_dir=str(tmp_path / "runs"), seed=0)
    return SearchConfig(**{**base, **kw})


def _measured(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["pattern"]: t for t in study.trials
            if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs}


@pytest.mark.slow
def test_requeued_work_goes_ahead_of_the_queue_and_is_measured_before_the_run_ends(tmp_path, npz_data):
    """A killed driver's trial and a failed baseline's retry used to be queued behind the other
    baselines: `resume` reached --trials on those and reported done with both left WAITING."""
    base = baselines("micro", Budget.parse("8softmax"), 224)
    names = list(base)  # all-linear, late-stages, last-of-stage, mambavision, ...
    run_search(_config(tmp_path, npz_data, faults={str(base[names[0]]): "raise"}), quiet=True)
    run_dir = tmp_path / "runs" / "k"
    study = _study(run_dir)
    assert [t.state for t in study.trials[:2]] == [TrialState.FAIL, TrialState.COMPLETE]
    cut = study.ask()  # what kill -9 leaves: the next baseline taken off the queue, RUNNING for good
    assert cut.number == 2 and study.trials[2].state == TrialState.RUNNING

    summary = resume_search(run_dir, trials=3, quiet=True)
    after = _study(run_dir)
    assert not [t for t in after.trials if t.state == TrialState.WAITING and "retry_of" in t.user_attrs]
    assert str(base[names[2]]) in _measured(after)  # the interrupted baseline, measured after all
    retry = [t for t in after.trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].user_attrs["status"] == "error"  # tried again (and failed again)
    assert after.trials[3].state == TrialState.WAITING  # the next baseline waited its turn
    assert summary.stopped == "done" and summary.completed == 2 and summary.failed == 2
