"""Seeds in a search (`run --seeds K`) and error bars wherever a top-1 is shown: the study and the
pattern files keep the mean, its standard error and every seed's value; one seed is a run as it
always was; pareto's table, CSV/JSON and plots, compare, runs and export show the spread and name ties."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics

import pandas as pd
import pytest
from cli_support import run, run_study
from optuna.trial import TrialState
from test_results_support import make_run

from sola_search.results.front import TIE_SE, knee, pareto_front, ties, trials_frame
from sola_search.results.patterns import load_pattern_file
from sola_search.results.runs import open_run


def test_seeds_give_the_mean_and_its_standard_error_and_one_seed_is_unchanged(tmp_path, npz_data, capsys,
                                                                               shared_ray, plain_run):
    """`plain_run` is this run without --seeds (and with 4 trials: its first two are these two)."""
    runs = tmp_path / "runs"
    common = ["run", "--budget", "2softmax", "--variant", "micro", "--trials", "2", "--preset", "quick", "--steps",
              "3", "--data", npz_data, "--runs-dir", runs, "--quiet"]
    status, out, err = run(capsys, *common, "--name", "two", "--seeds", "2")
    assert status == 0, err
    two, one = run_study(runs / "two"), run_study(plain_run)
    assert json.loads((runs / "two" / "run.json").read_text())["seeds"] == 2 and two.user_attrs["seeds"] == 2
    assert json.loads((plain_run / "run.json").read_text())["seeds"] == 1 and one.user_attrs["seeds"] == 1
    done = [t for t in two.trials if t.state == TrialState.COMPLETE]
    alone = {t.user_attrs["pattern"]: t for t in one.trials[:2] if t.state == TrialState.COMPLETE}
    assert len(done) == 2 and list(alone) == [t.user_attrs["pattern"] for t in done]  # the baselines, in order
    for t in done:
        each = t.user_attrs["val_top1_seeds"]
        assert len(each) == 2 and t.user_attrs["seeds"] == [0, 1]
        assert t.values[0] == pytest.approx(statistics.fmean(each))
        assert t.user_attrs["val_top1_se"] == pytest.approx(statistics.stdev(each) / math.sqrt(2))
        assert t.user_attrs["proxy_result"]["packed"] == 2 and t.user_attrs["proxy_result"]["seed"] == 0
        # One seed is the run without seeds, to the last digit: the first seed's value is its top-1.
        same = alone[t.user_attrs["pattern"]]
        assert each[0] == same.values[0] == same.user_attrs["proxy_result"]["val_top1"]
        assert "val_top1_se" not in same.user_attrs and "val_top1_seeds" not in same.user_attrs
        record = load_pattern_file(runs / "two" / "patterns" / f"{t.number}.json")
        assert record["metrics"]["val_top1_seeds"] == each and record["provenance"]["seeds"] == [0, 1]
        assert record["metrics"]["val_top1_se"] == pytest.approx(t.user_attrs["val_top1_se"])
        assert record["metrics"]["val_top1"] == pytest.approx(t.values[0])
    assert "val_top1_se" not in load_pattern_file(plain_run / "patterns" / "0.json")["metrics"]

    # A resume (or a run of the same name) with another K is refused in one line, changing nothing.
    status, _, err = run(capsys, *common, "--name", "two", "--seeds", "3", "--trials", "3")
    assert status == 2 and "was made with seeds 2, not 3" in err and err.count("\n") == 1
    assert len(run_study(runs / "two").trials) == len(two.trials)


@pytest.mark.parametrize("value, message", [("0", "--seeds 0: expected a whole number >= 1"),
                                            ("x", "--seeds 'x': expected a whole number >= 1"),
                                            ("65", "--seeds 65: expected 1 to 64")])
def test_bad_seeds_are_one_line_and_status_2(tmp_path, capsys, value, message):
    status, _, err = run(capsys, "run", "--budget", "2softmax", "--variant", "micro", "--seeds", value,
                         "--runs-dir", tmp_path / "runs", "--name", "x")
    assert status == 2 and message in err and err.count("\n") == 1
    assert err.startswith("sola-search: error: --seeds ")  # argparse's own checks read as the command's do
    assert not (tmp_path / "runs").exists()


def test_a_pack_counts_models_so_seeds_fill_it(tmp_path):
    from sola_search.search.config import SearchConfig, pack_models
    from sola_search.search.runner import _settle_machine, prepare

    assert [pack_models(8, k) for k in (1, 2, 3, 8, 9)] == [8, 8, 6, 8, 9]
    assert pack_models(1, 2) == 2  # a pattern's seeds always train together
    plan = prepare(SearchConfig(budget="2softmax", variant="micro", seeds=2, name="p", runs_dir=str(tmp_path)))
    cpu = _settle_machine(plan, gpus=0, gpus_per_node=0, cpus=2)
    assert (cpu.pack, cpu.patterns) == (2, 1)
    gpu = _settle_machine(plan, gpus=1, gpus_per_node=1, cpus=16)
    assert (gpu.pack, gpu.patterns, gpu.options["num_gpus"]) == (8, 4, 1.0)
    with pytest.raises(Exception, match="more than one GPU"):
        SearchConfig(budget="2softmax", pack=1, gpus_per_trial=0.75, seeds=2).check()


def test_on_cpus_a_worker_a_core_each_on_one_thread_as_memory_allows():
    from sola_search.search.config import SearchConfig
    from sola_search.search.runner import CPU_WORKER_BYTES, machine_layout

    cfg = SearchConfig(budget="2softmax")
    gib = 2**30
    assert machine_layout(cfg, 0, 0, 2, 16 * gib) == (1, 2, {"num_cpus": 1})  # the README's 2-core machine
    assert machine_layout(cfg, 0, 0, 16, 3 * CPU_WORKER_BYTES) == (1, 3, {"num_cpus": 5})  # memory caps them
    assert machine_layout(cfg, 0, 0, 2, 1 * gib) == (1, 1, {"num_cpus": 2})  # room for one: it takes both cores
    assert machine_layout(cfg, 0, 0, 4, 0) == (1, 4, {"num_cpus": 1})  # memory unknown: by the cores
    assert machine_layout(cfg, 0, 0, 0, 16 * gib) == (1, 1, {"num_cpus": 1})  # always one
    assert machine_layout(SearchConfig(budget="2softmax", workers=1), 0, 0, 2, 16 * gib) == (1, 1, {"num_cpus": 2})
    assert machine_layout(SearchConfig(budget="2softmax", seeds=2), 0, 0, 2, 16 * gib)[:2] == (2, 2)
    assert machine_layout(SearchConfig(budget="2softmax", trials=3), 0, 0, 16, 64 * gib)[1] == 3  # a pack each
    assert machine_layout(SearchConfig(budget="2softmax", trials=3, seeds=2), 0, 0, 16, 64 * gib)[:2] == (2, 3)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeded") / "runs"
    make_run(root, "s", n=12, seeds=2, spread=0.02)
    make_run(root, "plain", n=8, seed=1)
    return root


def test_pareto_shows_the_standard_error_in_its_table_csv_and_json(seeded, capsys):
    frame = trials_frame(open_run(seeded / "s").study)
    front = pareto_front(frame)
    status, out, _ = run(capsys, "pareto", seeded / "s", "--no-reports")
    assert status == 0 and "top-1 % ± se" in out and "the mean of 2 seeds" in out and "one seed each" not in out
    first = front.iloc[0]
    assert f"{100 * first['val_top1']:.2f} ± {100 * first['val_top1_se']:.2f}" in out
    status, out, _ = run(capsys, "pareto", seeded / "s", "--format", "csv", "--no-reports")
    table = list(csv.DictReader(io.StringIO(out)))
    assert list(table[0])[2:4] == ["val_top1", "val_top1_se"]
    assert [float(r["val_top1_se"]) for r in table] == pytest.approx(front["val_top1_se"].tolist())
    status, out, _ = run(capsys, "pareto", seeded / "s", "--format", "json", "--all", "--no-reports")
    done = frame[frame["state"] == "COMPLETE"]
    assert {r["trial"]: r["val_top1_se"] for r in json.loads(out) if r["state"] == "COMPLETE"} == pytest.approx(
        dict(zip(done["number"], done["val_top1_se"], strict=True)))
    # A run without seeds has no ± and no se field, as before.
    status, out, _ = run(capsys, "pareto", seeded / "plain", "--format", "csv", "--no-reports")
    assert "val_top1_se" not in out
    status, out, _ = run(capsys, "pareto", seeded / "plain", "--no-reports")
    assert "±" not in out and "top-1 %" in out


def test_plots_draw_error_bars(seeded, capsys, tmp_path, monkeypatch):
    import matplotlib.collections
    import matplotlib.figure

    figures, save = [], matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: (figures.append(fig), save(fig, *a, **k)))
    frame = trials_frame(open_run(seeded / "s").study)
    done = frame[(frame["state"] == "COMPLETE") & frame["feasible"]]
    for name in ("s", "plain"):
        assert run(capsys, "pareto", seeded / name, "--plot", tmp_path / f"{name}.png", "--no-reports")[0] == 0
    bars = [c for c in figures[0].axes[0].collections if isinstance(c, matplotlib.collections.LineCollection)]
    assert len(bars) == 1 and len(bars[0].get_segments()) == len(done)
    half = sorted(round((seg[1][1] - seg[0][1]) / 2, 9) for seg in bars[0].get_segments())
    assert half == pytest.approx(sorted(TIE_SE * 100 * done["val_top1_se"]))
    assert "mean ± 2 se over seeds" in figures[0].axes[0].get_ylabel()
    assert not [c for c in figures[1].axes[0].collections if isinstance(c, matplotlib.collections.LineCollection)]

    assert run(capsys, "pareto", seeded / "s", "--plot", tmp_path / "s.html", "--no-reports")[0] == 0
    html = (tmp_path / "s.html").read_text()
    from test_results_cli import _plotly_traces

    completed = next(t for t in _plotly_traces(html) if t["name"] == "completed")
    assert completed["error_y"]["array"] == pytest.approx((TIE_SE * 100 * done["val_top1_se"]).tolist())
    assert "± " in "".join(completed["text"])


def test_export_compare_and_runs_name_the_spread_and_the_ties(seeded, capsys, tmp_path):
    study = open_run(seeded / "s").study
    frame = trials_frame(study)
    front = pareto_front(frame)
    knee_n = int(knee(front)["number"])
    tied = ties(front, frame[frame["number"] == knee_n].iloc[0])
    # Tied by hand: the means within 2 se of each other's (the intervals mean ± 2 se overlap).
    row = front[front["number"] == knee_n].iloc[0]
    assert tied == sorted(int(r.number) for r in front.itertuples() if r.number != knee_n and
                          abs(r.val_top1 - row["val_top1"]) <= TIE_SE * (r.val_top1_se + row["val_top1_se"]))
    assert tied  # spread 0.02 over a front of close means: some are tied
    # A duplicate of the knee (a re-proposed pattern answered from storage) on the front is the knee
    # itself, not a trial it is tied with.
    with_copy = pd.concat([front, front[front["number"] == knee_n].assign(number=999, duplicate_of=knee_n)])
    assert ties(with_copy, row) == tied
    status, out, _ = run(capsys, "export", seeded / "s", "--pick", "knee", "--out", tmp_path / "k.json")
    assert status == 0 and f"trial {knee_n} is statistically tied on top-1 with trial" in out
    assert ", ".join(map(str, tied)) in out and out.count("\n") == 3 and " ± " in out.splitlines()[0]
    status, out, _ = run(capsys, "export", seeded / "plain", "--pick", "knee", "--out", tmp_path / "p.json")
    assert status == 0 and "tied" not in out and out.count("\n") == 2

    status, out, _ = run(capsys, "compare", seeded / "s", seeded / "plain", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert float(rows[0]["best_top1_se"]) > 0 and rows[1]["best_top1_se"] == ""
    status, out, _ = run(capsys, "compare", seeded / "s", seeded / "plain")
    assert status == 0 and out.splitlines()[1].count("±") == 1 and "±" not in out.splitlines()[2]
    status, out, _ = run(capsys, "runs", "--runs-dir", seeded)
    line = next(x for x in out.splitlines() if x.startswith("s "))
    assert status == 0 and "% ± " in line
    status, out, _ = run(capsys, "runs", "--runs-dir", seeded, "--json")
    best = next(r for r in json.loads(out) if r["run"] == "s")
    assert best["best_top1_se"] > 0 and isinstance(best["best_ties"], list)


def test_a_run_ranked_by_validation_loss_keeps_its_mean_se_and_shows_it(tmp_path, capsys, npz_data, shared_ray):
    """`run --score loss --seeds 2`: the study minimises val_loss (each trial the mean of its seeds, the
    standard error kept), the pattern files hold it beside top-1, and pareto, runs, compare and export
    show val loss where a top-1 run shows top-1."""
    runs = tmp_path / "runs"
    status, _, err = run(capsys, "run", "--budget", "2softmax", "--variant", "micro", "--trials", "1", "--preset",
                         "quick", "--steps", "2", "--data", npz_data, "--runs-dir", runs, "--name", "l", "--seeds", "2",
                         "--score", "loss", "--quiet")
    assert status == 0, err
    study = run_study(runs / "l")
    assert study.metric_names == ["val_loss", "gmacs"] and study.directions[0].name == "MINIMIZE"
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 1
    for t in done:
        each = t.user_attrs["val_loss_seeds"]
        assert t.values[0] == pytest.approx(statistics.fmean(each)) and len(each) == 2
        assert t.user_attrs["val_loss_se"] == pytest.approx(statistics.stdev(each) / math.sqrt(2))
        m = load_pattern_file(runs / "l" / "patterns" / f"{t.number}.json")["metrics"]
        assert m["val_loss"] == pytest.approx(t.values[0]) and m["val_loss_se"] == pytest.approx(
            t.user_attrs["val_loss_se"])
        top1 = t.user_attrs["val_top1_seeds"]  # the score it does not rank by: the same seeds' mean
        assert len(top1) == 2 and top1[0] == t.user_attrs["proxy_result"]["val_top1"]
        assert m["val_top1"] == pytest.approx(statistics.fmean(top1)) and m["val_top1_seeds"] == top1
        assert m["val_top1_se"] == pytest.approx(t.user_attrs["val_top1_se"])
    status, out, _ = run(capsys, "pareto", runs / "l", "--no-reports")
    assert status == 0 and "val loss" in out and "top-1 %" not in out
    status, out, _ = run(capsys, "runs", "--runs-dir", runs)
    assert status == 0 and "val loss" in out.splitlines()[1] and "GMACs" in out.splitlines()[1]
    status, out, _ = run(capsys, "compare", runs / "l", runs / "l")
    assert status == 0 and "best val loss" in out
    status, out, _ = run(capsys, "export", runs / "l", "--pick", "best", "--out", tmp_path / "best.json")
    assert status == 0 and "val loss " in out and "(top-1 " in out
