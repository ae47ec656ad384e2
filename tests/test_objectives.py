"""The objectives table and what reads it: every objective round-trips through the study, pattern
files, the pareto CSV/JSON and plots; the front, knee and hypervolume work on a run's two objectives
whatever they are; the search and the reports count trials with one test; a run's configuration,
lock and event log are read in one place."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
from dataclasses import replace

import numpy as np
import optuna
import pytest
from optuna.trial import create_trial
from test_results_support import make_run

from sola_search.errors import SolaError
from sola_search.objectives import (
    DEFAULT_OBJECTIVES,
    OBJECTIVES,
    SCORE_OBJECTIVES,
    Measured,
    get_objectives,
    study_objectives,
)
from sola_search.results.front import knee, pareto_front, reference_point, trials_frame
from sola_search.results.patterns import load_pattern_file, pattern_record_from_trial, write_pattern_file
from sola_search.results.report import _layers, front_report, plot, rows, summary_lines, write_reports
from sola_search.results.runs import Run, open_run, run_state
from sola_search.search.config import SearchConfig
from sola_search.search.rundir import Driver, RunDir
from sola_search.search.study import is_counted, open_study
from sola_search.space import Pattern, cost_table, get_variant
from sola_search.space.latency import LatencyTable


def _micro_latency() -> LatencyTable:
    """A latency table for micro at 224 px with made-up times (what is read, not how it is measured)."""
    v = get_variant("micro")
    return LatencyTable(v, 224, 8, "cpu", "fp32", 1.0, np.linspace(1.0, 2.0, v.num_blocks),
                        np.linspace(1.5, 2.5, v.num_blocks), {"stem": 1.0}, {}, {}, {})


def _measured_study(tmp_path, objectives=DEFAULT_OBJECTIVES, n: int = 8) -> optuna.Study:
    """A study made as the search makes it (`open_study`), its values computed by the tables."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    attrs = dict(variant="micro", budget="4softmax", resolution=224, preset="quick", encoding="topk", seed=0,
                 proxy={}, sola_search_version="0.1.0")
    study = open_study(storage, "obj", optuna.samplers.RandomSampler(seed=0), attrs, tuple(objectives))
    table, rng = cost_table("micro", 224), np.random.default_rng(0)
    for _ in range(n):
        p = Pattern.from_bits(rng.random(get_variant("micro").num_blocks) < 0.3, "micro")
        m = Measured(p, {"val_top1": float(rng.uniform(0.4, 0.9)), "val_loss": float(rng.uniform(0.3, 2))}, table,
                     _micro_latency())
        study.add_trial(create_trial(values=[OBJECTIVES[o].compute(m) for o in objectives],
                                     user_attrs=dict(pattern=str(p), softmax_layers=p.softmax_layers,
                                                     macs=table.macs(p), params=table.params)))
    return study


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_every_objective_round_trips_through_study_pattern_file_reports_and_plot(tmp_path, name):
    pair = ((name, "gmacs") if name in SCORE_OBJECTIVES.values() else  # what ranks, against a cost
            ("val_top1", name))  # a cost, against top-1
    study = _measured_study(tmp_path, pair)
    assert name in study.metric_names and [o.name for o in study_objectives(study)] == study.metric_names
    i = study.metric_names.index(name)
    o = OBJECTIVES[name]
    t = study.trials[0]
    path = write_pattern_file(tmp_path / "p.json", pattern_record_from_trial(study, t))
    assert load_pattern_file(path)["metrics"][name] == pytest.approx(t.values[i])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rep = front_report(Run(study, "obj", run_dir))
    assert rep.frame[name].tolist() == [tr.values[i] for tr in study.trials]
    knee = next(line for line in summary_lines(rep) if line.startswith("knee: "))  # named by what ranks
    assert ("to most accurate" in knee) == (pair[0] == "val_top1") and f"to best {OBJECTIVES[pair[0]].short}" in \
        knee.replace("most accurate", "best top-1")
    written = {p.name: p for p in write_reports(rep)}
    table = list(csv.DictReader(io.StringIO(written["pareto.csv"].read_text())))
    assert sorted(float(r[name]) for r in table) == sorted(tr.values[i] for tr in study.trials)
    trials = json.loads(written["pareto.json"].read_text())["trials"]
    assert sorted(r[name] for r in trials) == sorted(tr.values[i] for tr in study.trials)
    svg = plot([rep], tmp_path / "f.svg").read_text()
    html = plot([rep], tmp_path / "f.html").read_text()
    assert o.axis.replace("(", "").split()[0] in svg and o.axis in html


def test_an_old_study_without_metric_names_reads_as_the_default_objectives(tmp_path):
    s = optuna.create_study(directions=["maximize", "minimize"], storage=f"sqlite:///{tmp_path / 'o.db'}")
    s.add_trial(create_trial(values=[0.5, 0.2]))
    assert [o.name for o in study_objectives(s)] == list(DEFAULT_OBJECTIVES)
    assert trials_frame(s)[list(DEFAULT_OBJECTIVES)].values.tolist() == [[0.5, 0.2]]


def test_a_study_keeps_its_objectives(tmp_path):
    study = _measured_study(tmp_path, n=1)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    with pytest.raises(SolaError, match="optimises val_top1, gmacs, not gmacs, val_top1"):
        open_study(storage, "obj", optuna.samplers.RandomSampler(), dict(study.user_attrs), ("gmacs", "val_top1"))
    with pytest.raises(SolaError, match="searches variant 'micro', not 'tiny'"):
        open_study(storage, "obj", optuna.samplers.RandomSampler(), {**study.user_attrs, "variant": "tiny"})
    with pytest.raises(SolaError, match="unknown objective 'latency'"):
        get_objectives(["val_top1", "latency"])
    with pytest.raises(SolaError, match="expected two different ones"):
        get_objectives(["gmacs", "gmacs"])
    with pytest.raises(SolaError, match="unknown objective"):
        SearchConfig(budget="2softmax", objectives=["val_top1", {}]).check()  # a hand-edited run.json


def test_the_front_does_not_depend_on_the_order_or_the_names_of_the_objectives(tmp_path, monkeypatch):
    """The same trials under (val_top1, gmacs), (gmacs, val_top1) and a second cost objective of
    another name (a stand-in for latency_ms, registered for this test only) give the same front."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    base = _measured_study(tmp_path / "a", n=30)
    swapped = _measured_study(tmp_path / "b", ("gmacs", "val_top1"), n=30)
    monkeypatch.setitem(OBJECTIVES, "cost_ms", replace(OBJECTIVES["gmacs"], name="cost_ms", key="ms",
                                                      reference=None, from_attrs=lambda a: None))
    other = _measured_study(tmp_path / "c", ("val_top1", "cost_ms"), n=30)
    fronts = [pareto_front(trials_frame(s)) for s in (base, swapped, other)]
    assert fronts[0]["number"].tolist() == fronts[2]["number"].tolist() == fronts[1]["number"].tolist()[::-1]
    assert len(fronts[0]) > 1
    assert knee(fronts[0])["number"] == knee(fronts[2])["number"]  # (ties go to the first objective's better)
    reports = [front_report(Run(s, "obj")) for s in (base, swapped, other)]
    assert reports[1].hypervolume == pytest.approx(reports[0].hypervolume)
    # No reference in the table for cost_ms: 1.1 × its worst trial; the hypervolume is then smaller.
    ref = reference_point(other)
    assert ref == (0.0, pytest.approx(1.1 * trials_frame(other)["cost_ms"].max()))
    assert 0 < reports[2].hypervolume <= reports[0].hypervolume
    assert [r["trial"] for r in rows(reports[2])] == fronts[2]["number"].tolist() and "cost_ms" in rows(reports[2])[0]


def test_counted_is_the_searchs_is_counted_and_an_infeasible_measured_trial_counts(tmp_path):
    """The search counts what used up a training: a completed trial outside the budget (a violated
    constraint, `feasible: false`) was trained, so it counts toward --trials, as `is_counted` says;
    the reports once also required `feasible` and so disagreed with the search."""
    study = open_run(make_run(tmp_path, n=6, failed=2, infeasible=2)).study
    rep = front_report(Run(study, "r1"))
    assert rep.counts["counted"] == sum(is_counted(t) for t in study.trials)
    assert rep.counts["counted"] == rep.counts["complete"] - 1 + 2  # all but the duplicate, plus the failures
    assert rep.counts["infeasible"] == 2


def test_static_and_html_plots_draw_the_same_layers(tmp_path):
    rep = front_report(open_run(make_run(tmp_path, n=8)))
    labels = [layer.label for layer in _layers([rep])]
    assert {"completed", "infeasible", "front (HV", "knee (trial", "baseline", "failed, no top-1"} <= {
        next((w for w in ("front (HV", "knee (trial", "baseline", "failed, no top-1") if label.startswith(w)), label)
        for label in labels}
    html = plot([rep], tmp_path / "p.html").read_text()
    assert all(json.dumps(label)[1:-1] in html for label in labels)
    svg = plot([rep], tmp_path / "p.svg").read_text()
    assert all(label.split()[0] in svg for label in labels)


def test_rundir_owns_the_lock_the_event_log_and_the_study_path(tmp_path):
    run = RunDir(tmp_path / "r")
    run.create()
    assert run.read_events() == [] and run.driver() is None
    run.log("run_started")
    r = Run(None, "r", run.path)  # type: ignore[arg-type]
    assert run_state(r, 0) == "stopped"
    run.acquire()
    assert run.driver() == Driver(os.getpid(), socket.gethostname()) and run_state(r, 0) == "running"
    run.release()
    assert run.driver() is None
    run.log("run_interrupted")
    run.log("resumed")  # not an event the search writes: it does not change the state
    with open(run.events, "a") as f:
        f.write('{"cut by a cra')
    assert [e["event"] for e in run.read_events()] == ["run_started", "run_interrupted", "resumed"]
    assert run_state(r, 0) == "interrupted"
    run.events.write_bytes(b"\xff\xfe")
    assert run.read_events() is None and run_state(r, 0) == "stored"


def test_a_resumed_run_keeps_its_objectives_and_an_old_run_json_has_the_default(tmp_path, npz_data):
    from sola_search.search.runner import prepare

    runs = tmp_path / "runs"
    cfg = SearchConfig(budget="2softmax", variant="micro", data=npz_data, name="o", runs_dir=str(runs))
    plan = prepare(cfg)
    assert not plan.resuming and plan.config.objectives == list(DEFAULT_OBJECTIVES) and cfg.objectives is None
    assert [o.name for o in plan.objectives] == list(DEFAULT_OBJECTIVES)
    plan.run.create()
    stored = plan.config.to_dict()
    stored.pop("objectives")  # a run.json written before runs stored their objectives
    plan.run.write_config(stored)
    again = prepare(SearchConfig(budget="2softmax", name="o", runs_dir=str(runs)))
    assert again.resuming and again.config.objectives == list(DEFAULT_OBJECTIVES)
    with pytest.raises(SolaError, match="made with objectives"):
        prepare(SearchConfig(budget="2softmax", name="o", runs_dir=str(runs), objectives=["gmacs", "val_top1"]))


def test_a_trials_progress_line_keeps_its_form():
    """The README quotes a run's trial lines (`top-1 0.7030  4.804 GMACs`): the objectives table shows
    top-1 as a fraction there and as a percentage in prose (hover texts)."""
    from sola_search.objectives import OBJECTIVES

    top1, gmacs = OBJECTIVES["val_top1"], OBJECTIVES["gmacs"]
    assert f"{top1.show(0.703, line=True)}  {gmacs.show(4.80412, line=True)}" == "top-1 0.7030  4.804 GMACs"
    assert top1.show(0.703) == "top-1 70.30%"
    assert top1.show(float("nan"), line=True) == "top-1 —"


def test_fronts_compare_only_on_one_pair_of_axes(tmp_path):
    """compare refuses runs of other objectives, or latencies priced by other tables, --ref or not."""
    from sola_search.results.report import check_comparable

    def report(name, objectives, **config):
        d = tmp_path / name
        d.mkdir()
        return front_report(Run(_measured_study(d, objectives, n=3), name, d, config))

    gmacs = report("g", DEFAULT_OBJECTIVES)
    lat_a = report("a", ("val_top1", "latency_ms"), latency="a.json", latency_digest="aa")
    lat_a2 = report("a2", ("val_top1", "latency_ms"), latency="a.json", latency_digest="aa")
    lat_b = report("b", ("val_top1", "latency_ms"), latency="b.json", latency_digest="bb")
    check_comparable([lat_a, lat_a2])
    with pytest.raises(SolaError, match="different objectives"):
        check_comparable([gmacs, lat_a])
    with pytest.raises(SolaError, match=r"different tables \(a.json; b.json\)"):
        check_comparable([lat_a, lat_b])
