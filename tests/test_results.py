"""results: the trials frame, the Pareto front (against brute force and `study.best_trials`), knee,
hypervolume, reference point, opening runs and run states."""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState, create_trial
from test_results_support import fast_sqlite, make_run

from sola_search.errors import SolaError
from sola_search.results.front import (
    front_hypervolume,
    hypervolume,
    knee,
    max_gmacs,
    pareto_front,
    pareto_mask,
    reference_point,
    trials_frame,
)
from sola_search.results.runs import Run, find_runs, open_run, run_state
from sola_search.space import Budget, Pattern, cost_table, get_variant


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for seed in range(3):
        make_run(root, f"r{seed}", seed=seed, n=20 + 5 * seed)
    return root


def _brute_front(study: optuna.Study) -> list[int]:
    """Independent: plain loops over the stored trials, feasibility from the constraints."""
    ok = [t for t in study.trials if t.state == TrialState.COMPLETE and all(c <= 0 for c in t.constraints.values())]
    out = []
    for t in ok:
        dominated = any(u.values[0] >= t.values[0] and u.values[1] <= t.values[1]
                        and (u.values[0] > t.values[0] or u.values[1] < t.values[1]) for u in ok)
        if not dominated:
            out.append(t)
    return [t.number for t in sorted(out, key=lambda t: (t.values[1], -t.values[0], t.number))]


@pytest.mark.parametrize("seed", range(3))
def test_front_equals_brute_force_and_best_trials(runs_dir, seed):
    study = open_run(runs_dir / f"r{seed}").study
    front = pareto_front(trials_frame(study))
    assert front["number"].tolist() == _brute_front(study)
    assert set(front["number"]) == {t.number for t in study.best_trials}
    assert front["feasible"].all() and (front["state"] == "COMPLETE").all()
    assert front["val_top1"].max() < 0.99  # the infeasible 0.99 trials would dominate if counted
    assert list(front["gmacs"]) == sorted(front["gmacs"])


def test_trials_frame_rows(runs_dir):
    study = open_run(runs_dir / "r0").study
    f = trials_frame(study)
    assert len(f) == len(study.trials) and f["number"].tolist() == list(range(len(f)))
    failed = f[f["state"] == "FAIL"]
    assert len(failed) == 3 and (failed["status"] == "oom").all() and failed["reason"].str.contains("memory").all()
    assert failed["gmacs"].notna().all() and not failed["feasible"].any()
    assert (~f[f["val_top1"] == 0.99]["feasible"]).all()
    dup = f[f["duplicate_of"].notna()].iloc[0]
    assert dup["pattern"] == f.iloc[0]["pattern"]  # filled from its source
    assert f["baseline"].notna().sum() >= 3


def _study(tmp_path, budget="2softmax", variant="micro"):
    s = optuna.create_study(directions=["maximize", "minimize"], storage=fast_sqlite(tmp_path / "s.db"),
                            study_name="s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.set_metric_names(["val_top1", "gmacs"])
    s.set_user_attr("variant", variant)
    s.set_user_attr("budget", budget)
    s.set_user_attr("resolution", 224)
    return s


def _add(s, pattern: str, top1: float, **attrs):
    p = Pattern.parse(pattern, "micro")
    macs = cost_table("micro", 224).macs(p)
    s.add_trial(create_trial(values=[top1, macs / 1e9],
                             user_attrs=dict(pattern=pattern, softmax_layers=p.softmax_layers, macs=macs, **attrs)))


def test_budget_and_feasible_attr_exclude_trials_without_constraints(tmp_path):
    s = _study(tmp_path)
    _add(s, "LL-LL-LLLL-LL", 0.5)
    _add(s, "LL-LL-LLSS-SS", 0.9)  # 4 softmax > 2softmax: outside the budget, no constraint recorded
    _add(s, "LL-LL-LLLL-LS", 0.8, feasible=False)  # the search said so
    _add(s, "LL-LL-LLLS-LS", 0.7)
    s.add_trial(create_trial(state=TrialState.PRUNED))  # how the search skips a proposal outside the budget
    s.add_trial(create_trial(state=TrialState.RUNNING, user_attrs=dict(pattern="SS-LL-LLLL-LL")))
    f = trials_frame(s)
    assert f["feasible"].tolist() == [True, False, False, True, False, False]
    assert f["state"].tolist()[-2:] == ["PRUNED", "RUNNING"]
    assert pareto_front(f)["number"].tolist() == [0, 3]
    from sola_search.results.report import front_report, summary_lines

    lines = summary_lines(front_report(Run(s, "s")))
    assert "front: 2 of 4 completed trials (2 infeasible, 0 failed, 1 running); 1 proposals outside" in lines[1]


def test_a_one_seed_front_says_how_close_its_neighbours_are_and_how_to_tell_that_from_the_seed(tmp_path):
    s = _study(tmp_path)
    _add(s, "LL-LL-LLLL-LL", 0.5)
    from sola_search.results.report import front_report, summary_lines

    assert not any("one seed" in line for line in summary_lines(front_report(Run(s, "s"))))  # one member
    _add(s, "LL-LL-LLLL-LS", 0.503)
    _add(s, "LL-LL-LLLS-LS", 0.7)
    lines = summary_lines(front_report(Run(s, "s")))
    assert "top-1: one seed each, no error bars; neighbours on the front differ by 0.30 points at the least," in lines
    assert "which the seed alone may move: a run with --seeds 2 measures each pattern's spread" in lines
    lines = summary_lines(front_report(Run(s, "s", tmp_path / "runs" / "s")))
    assert f"sola-search resume {tmp_path / 'runs' / 's'} --confirm 3 gives them more seeds" in lines[3]


def test_not_a_sola_search_study(tmp_path):
    s = optuna.create_study(directions=["minimize", "minimize"], storage=f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(SolaError, match="maximized"):
        trials_frame(s)
    s1 = optuna.create_study(storage=f"sqlite:///{tmp_path / 'y.db'}")
    with pytest.raises(SolaError, match="sola-search study"):
        trials_frame(s1)


def test_pareto_mask_keeps_ties_and_drops_dominated():
    top1 = np.array([0.5, 0.5, 0.6, 0.4, 0.6])
    cost = np.array([1.0, 1.0, 2.0, 1.5, 3.0])
    assert pareto_mask(top1, cost).tolist() == [True, True, True, False, False]


def test_hypervolume_hand_checked():
    # Steps: cost 1→2 at 0.5, 2→4 at 0.7, 4→5 at 0.8: 0.5 + 1.4 + 0.8 = 2.7.
    top1, cost = [0.5, 0.7, 0.8], [1.0, 2.0, 4.0]
    assert hypervolume(top1, cost, (0.0, 5.0)) == pytest.approx(2.7)
    # A dominated point and a point outside the reference box change nothing.
    assert hypervolume(top1 + [0.6, 0.95], cost + [3.0, 6.0], (0.0, 5.0)) == pytest.approx(2.7)
    # Reference top-1 0.6: (4-2)·0.1 + (5-4)·0.2 = 0.4 (the 0.5 point is outside).
    assert hypervolume(top1, cost, (0.6, 5.0)) == pytest.approx(0.4)
    assert hypervolume([], [], (0.0, 1.0)) == 0.0
    df = pd.DataFrame(dict(val_top1=top1, gmacs=cost))
    assert front_hypervolume(df, (0.0, 5.0)) == pytest.approx(2.7)


def _front(points):
    return pd.DataFrame([dict(number=i, gmacs=c, val_top1=t) for i, (c, t) in enumerate(points)])


def test_knee_hand_checked():
    # Normalized: cost 0, 1/3, 2/3, 1; top-1 0, 0.78125, 0.9375, 1 → top1ₙ − costₙ peaks at the second.
    assert knee(_front([(1, 0.5), (2, 0.75), (3, 0.8), (4, 0.82)]))["number"] == 1
    # A front sagging below its chord: the extremes tie at 0 → the more accurate one.
    assert knee(_front([(1, 0.5), (2, 0.52), (3, 0.9)]))["number"] == 2
    assert knee(_front([(1, 0.5), (2, 0.6)]))["number"] == 1
    assert knee(_front([(1, 0.5)]))["number"] == 0
    assert knee(_front([])) is None
    # Equal points (a duplicate): the lower trial number.
    assert knee(_front([(1, 0.5), (2, 0.8), (2, 0.8), (4, 0.82)]))["number"] == 1


def test_reference_point_is_the_costliest_feasible_pattern_times_1_1(tmp_path):
    v = get_variant("micro")
    bits = np.array(list(itertools.product([0, 1], repeat=v.num_blocks)))
    macs = cost_table(v, 224).macs_many(bits)
    for text in ("2softmax", "4softmax", "0.3gmacs", None):
        b = Budget.parse(text) if text else None
        ok = np.ones(len(bits), bool)
        if b is not None and b.max_softmax is not None:
            ok &= bits.sum(1) <= b.max_softmax
        if b is not None and b.max_macs is not None:
            ok &= macs <= b.max_macs
        assert max_gmacs("micro", 224, b) == pytest.approx(macs[ok].max() / 1e9) or text == "0.3gmacs"
    assert max_gmacs("micro", 224, Budget.parse("0.3gmacs")) == pytest.approx(0.3)
    s = _study(tmp_path, budget="2softmax")
    assert reference_point(s) == pytest.approx((0.0, 1.1 * max_gmacs("micro", 224, Budget.parse("2softmax"))))
    s.set_user_attr("variant", "nonesuch")  # unknown variant: 1.1 × the largest stored cost
    _add(s, "LL-LL-LLLL-LL", 0.5)
    assert reference_point(s)[1] == pytest.approx(1.1 * s.trials[0].values[1])


# --- opening runs ------------------------------------------------------------------------------
def test_open_run_by_dir_and_by_storage(runs_dir):
    run = open_run(runs_dir / "r1")
    assert isinstance(run, Run) and run.name == "r1" and run.study.study_name == "r1"
    assert run.config["budget"] == "4softmax" and run.reports_dir == runs_dir / "r1" / "reports"
    url = f"sqlite:///{runs_dir / 'r1' / 'study.db'}"
    assert open_run(storage=url, study="r1").study.study_name == "r1"
    assert open_run(storage=url).dir is None  # the only study
    assert open_run(runs_dir / "r1" / "study.db").name == "r1"
    assert [p.name for p in find_runs(runs_dir)] == ["r0", "r1", "r2"]


def test_open_run_errors_create_nothing(tmp_path, runs_dir):
    with pytest.raises(SolaError, match="no such run directory"):
        open_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SolaError, match="no study.db"):
        open_run(tmp_path / "empty")
    assert not (tmp_path / "empty" / "study.db").exists()
    with pytest.raises(SolaError, match="no study database"):
        open_run(storage=f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(SolaError, match="no study 'zz'"):
        open_run(storage=f"sqlite:///{runs_dir / 'r0' / 'study.db'}", study="zz")
    with pytest.raises(SolaError, match="cannot open storage"):
        open_run(storage="nosuchdb://x")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "study.db").write_text("not sqlite")
    with pytest.raises(SolaError, match="is not a readable SQLite database"):
        open_run(tmp_path / "junk")
    assert (tmp_path / "junk" / "study.db").read_text() == "not sqlite"
    with pytest.raises(SolaError, match="no run given"):
        open_run()
    with pytest.raises(SolaError, match="no such directory"):
        find_runs(tmp_path / "nope")


def test_renamed_run_dir_opens_its_only_study(tmp_path):
    d = make_run(tmp_path, "old", n=3, failed=0, infeasible=0)
    d.rename(tmp_path / "new")
    (tmp_path / "new" / "run.json").write_text("{}")
    assert open_run(tmp_path / "new").study.study_name == "old"


@pytest.mark.parametrize("events,running,state", [
    ([], 0, "stored"),
    ([], 2, "stopped"),
    ([{"event": "run_started"}], 0, "stopped"),
    ([{"event": "run_started"}, {"event": "run_finished", "stopped": None}], 0, "finished"),
    ([{"event": "run_started"}, {"event": "run_finished", "stopped": "failures"}], 0, "finished (failures)"),
    ([{"event": "run_started"}, {"event": "run_interrupted"}], 0, "interrupted"),
    ([{"event": "run_finished"}, {"event": "run_resumed"}, {"event": "trial_started"}], 1, "stopped"),
])
def test_run_state_from_events(tmp_path, events, running, state):
    d = tmp_path / "r"
    d.mkdir()
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + '{"cut by a cra')
    assert run_state(Run(None, "r", d), running) == state  # type: ignore[arg-type]


def test_pareto_mask_equals_the_quadratic_definition_with_ties():
    """The sort-based mask against the all-pairs definition, on small grids full of ties."""
    from sola_search.results.front import pareto_mask

    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 25))
        t, c = rng.integers(0, 5, n) / 4, rng.integers(0, 5, n).astype(float)
        dominated = ((t[None, :] >= t[:, None]) & (c[None, :] <= c[:, None])
                     & ((t[None, :] > t[:, None]) | (c[None, :] < c[:, None]))).any(axis=1)
        assert (pareto_mask(t, c) == ~dominated).all()
    assert pareto_mask(np.array([]), np.array([])).shape == (0,)
