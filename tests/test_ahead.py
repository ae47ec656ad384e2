"""`run --ahead 1`: a pack queued behind each busy worker's running one. The same trials and
results as one pack at a time, `--time` left with nothing to take back, a worker that dies with two
packs, and the option stored and checked like the others. Real runs on a real local Ray."""

from __future__ import annotations

import json

import pytest
from cli_support import run_study
from optuna.trial import TrialState
from test_search import BUDGET, _config, _events

from sola_search.search import run_search
from sola_search.search.pool import Done, WorkerPool
from sola_search.search.runner import _settle_machine, pack_wall, prepare, starts_in_time
from sola_search.space import Budget, baselines

pytestmark = pytest.mark.usefixtures("shared_ray")


def _measured(run_dir) -> dict[int, tuple[str, tuple]]:
    return {t.number: (t.user_attrs["pattern"], tuple(t.values)) for t in run_study(run_dir).trials
            if t.state == TrialState.COMPLETE}


@pytest.mark.slow
def test_asking_ahead_measures_what_one_pack_at_a_time_does(tmp_path, npz_data, plain_run):
    """The session's plain run is one pack at a time (`--ahead 0`, a CPU's default); asked ahead, the same
    trials, numbered alike, with the same patterns (the seeded sampler sees the same trials, running or
    done) and the same values, nothing measured twice or lost."""
    summary = run_search(_config(tmp_path, npz_data, trials=4, ahead=1, name="a1"), quiet=True)
    assert summary.completed == 4 and summary.failed == 0
    ahead, one_at_a_time = _measured(tmp_path / "runs" / "a1"), _measured(plain_run)
    assert ahead == one_at_a_time and len({p for p, _ in ahead.values()}) == 4
    assert not [e for e in _events(plain_run) if e.get("queued")]
    queued = [e for e in _events(tmp_path / "runs" / "a1") if e["event"] == "trial_started" and e.get("queued")]
    assert queued  # it did ask ahead
    assert json.loads((tmp_path / "runs" / "a1" / "run.json").read_text())["ahead"] == 1


@pytest.mark.slow
def test_a_time_limit_with_asking_ahead_takes_nothing_back(tmp_path, npz_data, monkeypatch):
    """No pack is asked ahead before a pack's wall is known, nor one that would start after the limit; so
    when the time comes nothing is re-queued (no `interrupted` trial, nothing WAITING or RUNNING). Two
    workers, each holding at most two packs."""
    held = []
    submit = WorkerPool.submit

    def counting(pool, *args, **kw):
        ref = submit(pool, *args, **kw)
        held.append(max(len(pool._held(w)) for w in {j.worker for j in pool.jobs.values()}))
        return ref

    monkeypatch.setattr(WorkerPool, "submit", counting)
    cfg = _config(tmp_path, npz_data, budget="4softmax", trials=None, time_limit_s=25, workers=2, ahead=1,
                  name="tl")
    summary = run_search(cfg, quiet=True)  # 386 patterns: the time ends the run, not the space (2softmax: 56)
    assert summary.stopped == "time" and summary.completed >= 3
    study = run_study(tmp_path / "runs" / "tl")
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert not [t for t in study.trials if t.user_attrs.get("status") == "interrupted"]
    events = _events(tmp_path / "runs" / "tl")
    kinds = [(e["event"], e.get("queued")) for e in events]
    assert ("trial_started", True) in kinds  # it asked ahead
    assert kinds.index(("trial_finished", None)) < kinds.index(("trial_started", True))  # once a wall was known
    assert events[-1]["event"] == "run_finished" and max(held) == 2


def test_a_worker_that_dies_with_two_packs(tmp_path, npz_data):
    """The first pack's worker dies with the second queued behind it: the first fails (its worker died),
    the second never ran and is re-queued, measured by the one replacement worker."""
    first, second = list(baselines("micro", Budget.parse(BUDGET), 224).values())[:2]
    summary = run_search(_config(tmp_path, npz_data, trials=3, faults={str(first): "die"}, ahead=1), quiet=True)
    assert summary.completed == 2 and summary.failed == 1
    run_dir = tmp_path / "runs" / "t"
    trials = run_study(run_dir).trials
    assert trials[0].user_attrs["status"] == "error" and "worker process died" in trials[0].user_attrs["reason"]
    assert trials[1].user_attrs["status"] == "interrupted" and trials[1].user_attrs["pattern"] == str(second)
    assert str(second) in {p for p, _ in _measured(run_dir).values()}  # measured after all
    events = _events(run_dir)
    assert [e["trial"] for e in events if e["event"] == "trial_requeued"] == [1]
    assert len([e for e in events if e["event"] == "worker_ready"]) == 2  # one replacement, not two


def test_a_pack_asked_ahead_is_timed_by_its_worker():
    """A queued pack's wall from submit counts its wait: the trial's own duration is its worker's figure."""
    results = [[{"worker_s": 2.0}]]
    assert pack_wall(Done("r", None, results, None, 5.0)) == 5.0  # handed to an idle worker: from submit
    assert pack_wall(Done("r", None, results, None, 5.0, queued=True)) == 2.0
    assert pack_wall(Done("r", None, None, RuntimeError(), 5.0, queued=True)) == 5.0  # failed whole: no figure


def test_a_pack_is_asked_ahead_only_when_it_would_start_before_the_time_limit():
    assert starts_in_time(100.0, [], None)  # no --time: always
    assert not starts_in_time(100.0, [], 1000.0)  # no wall known yet: not under --time
    assert starts_in_time(100.0, [10.0, 20.0, 90.0], 121.0)  # the median wall, 20 s: starts at 120
    assert not starts_in_time(100.0, [10.0, 20.0, 90.0], 120.0)


def test_ahead_is_stored_and_left_unset_the_machine_decides(tmp_path, npz_data):
    """A run made before --ahead, or without it, asks ahead where its workers have GPUs (1), not on a
    CPU or for the supernet (0); a value given or stored is kept."""
    runs = tmp_path / "runs"
    (runs / "old").mkdir(parents=True)
    stored = _config(tmp_path, npz_data, name="old").to_dict()
    del stored["ahead"]  # run.json of a run made before --ahead
    (runs / "old" / "run.json").write_text(json.dumps(stored))
    old = prepare(_config(tmp_path, npz_data, name="old"))
    assert old.config.ahead is None
    assert _settle_machine(old, 1.0, 1.0, 8.0).config.ahead == 1 and _settle_machine(old, 0, 0, 8.0).config.ahead == 0
    assert prepare(_config(tmp_path, npz_data, name="old", ahead=0)).config.ahead == 0  # given again: this session
    stored["ahead"] = 0
    (runs / "old" / "run.json").write_text(json.dumps(stored))
    kept = prepare(_config(tmp_path, npz_data, name="old"))
    assert kept.config.ahead == 0 and _settle_machine(kept, 1.0, 1.0, 8.0).config.ahead == 0  # kept by a resume
    new = prepare(_config(tmp_path, npz_data, name="new", estimator="supernet"))
    assert _settle_machine(new, 1.0, 1.0, 8.0).config.ahead == 0
