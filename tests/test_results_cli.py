"""`sola-search pareto | compare | runs` on runs the tests make, plots, and every bad-input path."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys

import matplotlib.image
import optuna
import pytest
from test_results_support import make_run

from sola_search.cli import main
from sola_search.results.front import pareto_front, reference_point, trials_frame
from sola_search.results.runs import open_run
from sola_search.space import Pattern, get_variant, model_cost


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "runs"
    make_run(root, "a", seed=0, n=16)
    make_run(root, "b", seed=1, n=10, budget="3softmax", events=[{"event": "run_started"},
                                                               {"event": "run_finished", "stopped": None}])
    return root


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _front(run_dir):
    return pareto_front(trials_frame(open_run(run_dir).study))


def test_pareto_table(runs, capsys):
    code, out, err = _run(capsys, "pareto", runs / "a")
    assert code == 0 and not err
    front = _front(runs / "a")
    lines = out.splitlines()
    for n, pattern in zip(front["number"], front["pattern"], strict=True):
        assert any(line.split("│")[1].strip() == str(n) and pattern.split("-")[0].replace("L", "·") in line
                   for line in lines if line.startswith("│"))
    assert "◆ knee" in out and "baseline all-linear" in out and "= trial 0" in out
    ref = reference_point(open_run(runs / "a").study)
    assert f"at reference (top-1 0, {ref[1]:.3f} GMACs)" in out
    assert f"front: {len(front)} of" in out
    assert (runs / "a" / "reports" / "pareto.csv").is_file() and (runs / "a" / "reports" / "pareto.json").is_file()
    saved = json.loads((runs / "a" / "reports" / "pareto.json").read_text())
    assert {t["trial"] for t in saved["trials"] if t["on_front"]} == set(front["number"])


def test_pareto_json_and_csv(runs, capsys):
    front = _front(runs / "a")
    code, out, _ = _run(capsys, "pareto", runs / "a", "--format", "json", "--no-reports")
    rows = json.loads(out)
    assert code == 0 and [r["trial"] for r in rows] == front["number"].tolist()
    assert {"trial", "pattern", "val_top1", "macs", "params", "gmacs", "softmax_layers", "knee"} <= set(rows[0])
    assert sum(r["knee"] for r in rows) == 1
    assert all(isinstance(r["macs"], int) and isinstance(r["pattern"], str) for r in rows)
    code, out, _ = _run(capsys, "pareto", runs / "a", "--format", "csv", "--all", "--no-reports")
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(table) == len(open_run(runs / "a").study.trials)
    assert {r["state"] for r in table} == {"COMPLETE", "FAIL"}
    assert sum(r["on_front"] == "True" for r in table) == len(front)
    assert [r["reason"] for r in table if r["state"] == "FAIL"][0] == "CUDA out of memory (simulated)"


def test_pareto_json_has_no_nan(runs, capsys, tmp_path):
    """A queued trial (a baseline waiting for a worker) has no pattern yet: null in the JSON, never
    NaN, which is not JSON."""
    def no_nan(name):
        raise AssertionError(f"{name} in the JSON")

    shutil.copytree(runs / "a", tmp_path / "a")
    open_run(tmp_path / "a").study.enqueue_trial({})
    code, out, _ = _run(capsys, "pareto", tmp_path / "a", "--format", "json", "--all")
    rows = json.loads(out, parse_constant=no_nan)
    assert code == 0 and [r["pattern"] for r in rows if r["state"] == "WAITING"] == [None]
    json.loads((tmp_path / "a" / "reports" / "pareto.json").read_text(), parse_constant=no_nan)


def test_pareto_on_a_run_whose_reports_cannot_be_written(runs, capsys, tmp_path):
    shutil.copytree(runs / "a", tmp_path / "a")
    shutil.rmtree(tmp_path / "a" / "reports", ignore_errors=True)
    (tmp_path / "a" / "reports").write_text("not a directory")  # as a read-only copy of a run would fail
    code, out, err = _run(capsys, "pareto", tmp_path / "a", "--format", "json")
    assert code == 0 and json.loads(out)
    assert "no reports written" in err and len(err.strip().splitlines()) == 1


def test_pareto_all_table_marks_failed_and_infeasible(runs, capsys):
    code, out, _ = _run(capsys, "pareto", runs / "a", "--all", "--no-reports")
    assert code == 0 and "fail: CUDA out of memory" in out and "infeasible" in out and "front" in out


def test_all_table_gives_numbers_their_width(runs, capsys, tmp_path):
    """A long failure reason made `--all` (piped, or on a narrow terminal) squeeze numbers to `4.8…`:
    numbers and patterns keep their width, the notes wrap on a terminal, and a pipe gets whole lines."""
    from rich.console import Console

    from sola_search.results import report as rp

    d = make_run(tmp_path, "small-8softmax-20261129-033346", variant="small", budget="8softmax", n=4)
    study = open_run(d).study
    reason = "RuntimeError: the worker's training crashed: " + "x" * 150
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={
        **{k: v for k, v in study.trials[-2].user_attrs.items() if k != "proxy_result"},
        "status": "error", "reason": reason}))
    n = len(study.trials)

    def cells(out: str) -> list[list[str]]:
        rows_ = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]
        return [r for r in rows_ if r[0]]  # a row's first line (a wrapped note adds lines with no trial)

    code, out, _ = _run(capsys, "pareto", d, "--all", "--no-reports")  # stdout is not a terminal here
    table = cells(out)
    assert code == 0 and len(table) == n and f"fail: {reason}" in out
    for console in (Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None),
                    Console(file=io.StringIO(), width=60)):
        rp.render_table(rp.front_report(open_run(d)), all_trials=True, console=console)
        assert [r[:6] for r in cells(console.file.getvalue())] == [r[:6] for r in table]
    for r in table:
        assert r[0].isdigit() and re.fullmatch(r"\d+\.\d\d|—", r[1]) and re.fullmatch(r"\d+\.\d{3}", r[2])
        assert re.fullmatch(r"\d+\.\d\d", r[3]) and r[4].isdigit() and len(r[5]) == 23, r


def test_pareto_by_storage_url(runs, capsys):
    url = f"sqlite:///{runs / 'a' / 'study.db'}"
    code, out, _ = _run(capsys, "pareto", "--storage", url, "--study", "a", "--format", "json")
    assert code == 0 and [r["trial"] for r in json.loads(out)] == _front(runs / "a")["number"].tolist()


def test_plot_png_and_html(runs, capsys, tmp_path):
    code, out, _ = _run(capsys, "pareto", runs / "a", "--plot", tmp_path / "f.png", "--no-reports")
    assert code == 0 and f"wrote {tmp_path / 'f.png'}" in out
    assert matplotlib.image.imread(tmp_path / "f.png").shape[:2] == (500, 800)
    code, _, _ = _run(capsys, "pareto", runs / "a", "--plot", tmp_path / "f.html", "--format", "json", "--no-reports")
    html = (tmp_path / "f.html").read_text()
    assert code == 0 and "<script src=\"http" not in html and len(html) > 1_000_000  # plotly.js inlined
    frame = trials_frame(open_run(runs / "a").study)
    for r in frame.itertuples():  # every trial that has a cost is a point, with its pattern in its hover text
        assert f"a trial {r.number}\\u003cbr\\u003e{r.pattern}" in html
    assert "front (HV" in html and "knee (trial" in html and "failed, no top-1" in html and "infeasible" in html


def test_a_plot_makes_the_folders_it_goes_in_as_export_does_and_bad_input_makes_none(runs, capsys, tmp_path,
                                                                                       monkeypatch):
    """`pareto --plot new/dir/f.png` said "directory new/dir does not exist" while `export --out new/dir/x.json`
    made it: every command that writes a file now makes the missing folders above it, once its input is
    checked, and a command that fails makes none."""
    code, out, err = _run(capsys, "pareto", runs / "a", "--plot", tmp_path / "p" / "q" / "f.png", "--no-reports")
    assert code == 0 and not err and f"wrote {tmp_path / 'p' / 'q' / 'f.png'}" in out
    assert matplotlib.image.imread(tmp_path / "p" / "q" / "f.png").shape[:2] == (500, 800)
    code, out, err = _run(capsys, "compare", runs / "a", runs / "b", "--plot", tmp_path / "c" / "f.svg")
    assert code == 0 and f"wrote {tmp_path / 'c' / 'f.svg'}" in out and (tmp_path / "c" / "f.svg").is_file()
    for argv in (["pareto", runs / "a", "--plot", tmp_path / "n" / "f.jpg"],  # not a plot's suffix
                 ["pareto", runs / "a", "--ref", "x", "--plot", tmp_path / "n" / "f.png"],
                 ["pareto", tmp_path / "nope", "--plot", tmp_path / "n" / "f.png"],
                 ["compare", runs / "a", tmp_path / "nope", "--plot", tmp_path / "n" / "f.png"]):
        code, out, err = _run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and not (tmp_path / "n").exists(), err

    def fails(fig, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", fails)  # a write that fails leaves no folder behind
    code, _, err = _run(capsys, "pareto", runs / "a", "--plot", tmp_path / "n" / "m" / "f.png", "--no-reports")
    assert code == 2 and "No space left on device" in err and not (tmp_path / "n").exists(), err


def _drawn(monkeypatch, argv) -> list[tuple[float, float, str]]:
    """Run the command and return what its PNG drew: (x, y, 'data' or 'x-axis') for every point and
    line vertex, and every legend label as (nan, nan, label)."""
    import matplotlib.figure

    figures, save = [], matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: (figures.append(fig), save(fig, *a, **k)))
    assert main([str(a) for a in argv]) == 0
    ax = figures[0].axes[0]
    out = []
    for artist in [*ax.collections, *ax.lines]:
        if hasattr(artist, "get_offsets"):
            xy, t = artist.get_offsets(), artist.get_offset_transform()
        else:
            xy, t = artist.get_xydata(), artist.get_transform()
        where = "data" if t == ax.transData else "x-axis" if t == ax.get_xaxis_transform() else str(t)
        out += [(float(x), float(y), where) for x, y in xy]
    return out + [(math.nan, math.nan, t.get_text()) for t in ax.get_legend().get_texts()]


def test_plots_draw_no_top1_that_was_not_measured(runs, capsys, tmp_path, monkeypatch):
    """An interrupted trial (Ctrl-C; re-queued on resume) is not drawn, nor called failed. A failed one
    has a cost but no top-1: a tick on the GMACs axis, never a point at an invented top-1."""
    shutil.copytree(runs / "a", tmp_path / "a")
    study = open_run(tmp_path / "a").study
    v = get_variant("micro")
    everything = Pattern.parse("-".join("S" * d for d in v.depths), v)  # a cost no other trial has
    cost = model_cost(v, everything, 224)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=dict(
        pattern=str(everything), softmax_layers=everything.softmax_layers, macs=cost.macs, params=cost.params,
        status="interrupted", reason="interrupted (Ctrl-C or kill); re-queued")))
    frame = trials_frame(study)
    measured = {(round(r.gmacs, 9), round(100 * r.val_top1, 9)) for r in frame.itertuples() if r.state == "COMPLETE"}
    failed = frame[(frame["state"] == "FAIL") & (frame["status"] == "oom")]["gmacs"].round(9).tolist()
    drawn = _drawn(monkeypatch, ["pareto", tmp_path / "a", "--plot", tmp_path / "f.png", "--no-reports"])
    capsys.readouterr()
    assert all((round(x, 9), round(y, 9)) in measured for x, y, w in drawn if w == "data")
    assert sorted(round(x, 9) for x, _, w in drawn if w == "x-axis") == sorted(failed)
    assert not [d for d in drawn if math.isclose(d[0], cost.gmacs)]
    labels = [w for x, _, w in drawn if math.isnan(x)]
    assert "failed, no top-1 (ticks at their GMACs)" in labels and not [t for t in labels if "interrupt" in t]
    # With no real failure, nothing is drawn or labelled as failed; the table says 0 failed.
    ok = make_run(tmp_path / "ok", "ok", n=6, failed=0)
    ok_study = open_run(ok).study
    ok_study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=dict(
        pattern=str(everything), macs=cost.macs, params=cost.params, status="interrupted")))
    drawn = _drawn(monkeypatch, ["compare", ok, runs / "b", "--plot", tmp_path / "c.png"])
    assert not [d for d in drawn if d[2].startswith("ok fail") or math.isclose(d[0], cost.gmacs)]
    assert _run(capsys, "pareto", ok, "--plot", tmp_path / "ok.html", "--no-reports")[0] == 0
    traces = _plotly_traces((tmp_path / "ok.html").read_text())
    assert not [t for t in traces if "fail" in t["name"] or cost.gmacs in t["x"]]
    assert not [t for t in traces if f"ok trial {ok_study.trials[-1].number}<br>" in "".join(t["text"])]
    _run(capsys, "pareto", tmp_path / "a", "--plot", tmp_path / "a.html", "--no-reports")
    traces = _plotly_traces((tmp_path / "a.html").read_text())
    assert all(set(t["y"]) <= {100 * v for v in frame["val_top1"].dropna()} for t in traces if "yaxis" not in t)
    assert [t["name"] for t in traces if t.get("yaxis") == "y2"] == ["failed, no top-1 (ticks at their GMACs)"]


def test_baselines_are_told_apart_by_marker_and_legend_not_piled_labels(runs, capsys, tmp_path, monkeypatch):
    """Baselines crowd near all-linear, where their text labels piled up: each gets a marker and a
    legend entry instead, and no text is drawn among the points (PNG and HTML)."""
    import matplotlib.figure

    frame = trials_frame(open_run(runs / "a").study)
    names = sorted(f"baseline {b}" for b in frame[frame["state"] == "COMPLETE"]["baseline"].dropna())
    figures, save = [], matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: (figures.append(fig), save(fig, *a, **k)))
    assert _run(capsys, "pareto", runs / "a", "--plot", tmp_path / "f.png", "--no-reports")[0] == 0
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.texts] == []
    assert sorted(t.get_text() for t in ax.get_legend().get_texts() if t.get_text().startswith("baseline")) == names
    assert len(names) >= 4 and matplotlib.image.imread(tmp_path / "f.png").shape[:2] == (500, 800)
    _run(capsys, "pareto", runs / "a", "--plot", tmp_path / "f.html", "--no-reports")
    html = (tmp_path / "f.html").read_text()
    assert sorted(t["name"] for t in _plotly_traces(html) if t["name"].startswith("baseline")) == names
    assert not _plotly_traces(html, layout=True).get("annotations")


def _plotly_traces(html: str, layout: bool = False):
    """The traces of a plotly HTML file (the JSON list passed to Plotly.newPlot), or its layout."""
    decoder, start = json.JSONDecoder(), html.index("[", html.index("Plotly.newPlot("))
    traces, end = decoder.raw_decode(html, start)
    return decoder.raw_decode(html, html.index("{", end))[0] if layout else traces


def test_plot_vector_figures_for_papers(runs, capsys, tmp_path):
    for name in ("f.svg", "F.PDF"):
        assert _run(capsys, "pareto", runs / "a", "--plot", tmp_path / name, "--no-reports")[0] == 0
    svg = (tmp_path / "f.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "GMACs (full model)" in svg
    assert (tmp_path / "F.PDF").read_bytes().startswith(b"%PDF")


def test_compare(runs, capsys, tmp_path):
    code, out, err = _run(capsys, "compare", runs / "a", runs / "b", "--plot", tmp_path / "c.png")
    assert code == 0 and not err
    ref = max(reference_point(open_run(runs / r).study)[1] for r in "ab")
    assert f"at one reference (top-1 0, {ref:.3f} GMACs)" in out
    assert out.splitlines()[1].startswith("a ") and out.splitlines()[2].startswith("b ")
    assert matplotlib.image.imread(tmp_path / "c.png").shape[:2] == (500, 800)
    code, out, _ = _run(capsys, "compare", runs / "a", runs / "b", "--format", "json", "--ref", "0.4,1.0")
    rows = json.loads(out)
    assert code == 0 and [r["run"] for r in rows] == ["a", "b"]
    assert all(r["ref_top1"] == 0.4 and r["ref_gmacs"] == 1.0 for r in rows)
    code, _, _ = _run(capsys, "compare", runs / "a", runs / "b", "--plot", tmp_path / "c.html")
    assert code == 0 and "b trial 0\\u003cbr\\u003e" in (tmp_path / "c.html").read_text()


def test_compare_warns_when_the_proxies_differ(runs, capsys, tmp_path):
    """Top-1 from proxies of other steps or data, or of another variant (another proxy model), cannot
    be compared; a seed or a device can. The warning named steps only, across variants."""
    make_run(tmp_path, "longer", n=6, proxy={"width": 0.25, "resolution": 32, "steps": 20, "device": "cuda"})
    code, out, err = _run(capsys, "compare", runs / "a", tmp_path / "longer")
    assert code == 0 and out
    assert err == "warning: these runs differ in steps (10, 20): their top-1 values are not comparable\n"
    make_run(tmp_path, "tiny", n=6, variant="tiny", seed=3,
             proxy={"width": 0.25, "resolution": 32, "steps": 20, "data": "npz:mine.npz"})
    assert _run(capsys, "compare", runs / "a", tmp_path / "tiny")[2] == (
        "warning: these runs differ in variant (micro, tiny); data (None, npz:mine.npz); steps (10, 20): "
        "their top-1 values are not comparable\n")
    make_run(tmp_path, "again", n=6, seed=3, proxy={"width": 0.25, "resolution": 32, "steps": 10, "seed": 3})
    assert _run(capsys, "compare", runs / "a", tmp_path / "again")[2] == ""
    # A run stored before an option retired holds it at the behaviour that remains: not a difference.
    make_run(tmp_path, "old", n=6, proxy={"width": 0.25, "resolution": 32, "steps": 10, "task": "classify",
                                          "build_on_device": False})
    assert _run(capsys, "compare", runs / "a", tmp_path / "old")[2] == ""
    # Scores of a weight-sharing supernet are not trained top-1 values: the same proxy settings or not.
    supernet = make_run(tmp_path, "shared", n=6)
    (supernet / "run.json").write_text(json.dumps({**json.loads((supernet / "run.json").read_text()),
                                                   "estimator": "supernet"}))
    assert _run(capsys, "compare", runs / "a", supernet)[2] == (
        "warning: these runs differ in estimator (train, supernet): their top-1 values are not comparable\n")


def test_runs_listing(runs, capsys, tmp_path):
    code, out, _ = _run(capsys, "runs", "--runs-dir", runs)
    lines = out.splitlines()
    assert code == 0 and lines[1].startswith("a ") and lines[2].startswith("b ")
    assert "stored" in lines[1] and "finished" in lines[2] and "4softmax" in lines[1]
    code, out, _ = _run(capsys, "runs", "--runs-dir", runs, "--json")
    rows = {r["run"]: r for r in json.loads(out)}
    front_a = _front(runs / "a")
    assert rows["a"]["front"] == len(front_a) and rows["a"]["failed"] == 3
    assert rows["a"]["best_top1"] == front_a["val_top1"].max()
    # One broken run is reported, not fatal.
    broken = tmp_path / "runs"
    broken.mkdir()
    (broken / "bad").mkdir()
    (broken / "bad" / "run.json").write_text("{}")
    code, out, _ = _run(capsys, "runs", "--runs-dir", broken)
    assert code == 0 and "unreadable" in out
    (broken / "bad").rename(broken / ".bad")
    (tmp_path / "empty").mkdir()
    code, out, _ = _run(capsys, "runs", "--runs-dir", tmp_path / "empty")
    assert code == 0 and "no runs" in out


def test_a_trial_a_killed_driver_left_running_is_interrupted_not_running(tmp_path, capsys):
    """kill -9 of the driver mid-trial leaves that trial RUNNING in the study, with nothing measuring it:
    `pareto` said `(0 infeasible, 0 failed, 1 running)` and `runs --json` `running: 1`, as if it were
    being measured. Without a live driver it is interrupted (and `resume` measures it again); while a
    driver holds the run it is running. Reading changes nothing in the run."""
    from cli_support import run_study
    from test_guards import _digest

    from sola_search.search.rundir import RunDir

    run = make_run(tmp_path / "runs", "k", n=4, failed=0, infeasible=0, events=[{"event": "run_started"}])
    cut = run_study(run).ask()  # what kill -9 mid-trial leaves: a trial taken, never told
    cut.set_user_attr("pattern", "LL-LL-LLLL-SS")
    before = _digest(run)
    code, out, err = _run(capsys, "pareto", run, "--all", "--no-reports")
    assert code == 0 and not err
    assert "0 failed, 1 interrupted)" in out and "running)" not in out
    assert (f"trial {cut.number} was left running when the run stopped (no driver is measuring it): "
            f"sola-search resume {run} measures it again") in " ".join(out.split())  # as rich wraps it or not
    row = next(line for line in out.splitlines() if line.startswith(f"│ {cut.number:>5} │"))
    assert "interrupted: the run stopped before this trial finished; resume measures it again" in row
    rows = json.loads(_run(capsys, "pareto", run, "--all", "--no-reports", "--format", "json")[1])
    assert [(r["state"], r["status"]) for r in rows if r["trial"] == cut.number] == [("RUNNING", "interrupted")]
    listed = json.loads(_run(capsys, "runs", "--runs-dir", tmp_path / "runs", "--json")[1])[0]
    assert (listed["state"], listed["running"], listed["left_running"]) == ("stopped", 0, 1)
    assert _digest(run) == before  # read-only: the trial stays RUNNING until `resume` recovers it

    live = RunDir(run)
    live.acquire()  # a live driver (this process) holds the run: its trial is being measured
    try:
        out = _run(capsys, "pareto", run, "--all", "--no-reports")[1]
        listed = json.loads(_run(capsys, "runs", "--runs-dir", tmp_path / "runs", "--json")[1])[0]
    finally:
        live.release()
    assert "0 failed, 1 running)" in out and "interrupted" not in out and "left running" not in out
    assert (listed["state"], listed["running"], listed["left_running"]) == ("running", 1, 0)


def test_a_driver_on_another_host_is_running_there_not_interrupted(tmp_path, capsys):
    """On a cluster (run directory on a shared file system) `pareto`/`runs` on another host than the
    driver's checked the lock's pid here, found no such process and called the live run `stopped` and
    its RUNNING trials interrupted. A lock naming another host counts as live and says where it runs;
    a lock with no host (an older version's) is checked by pid as before. Reading changes nothing."""
    import psutil
    from cli_support import run_study
    from test_guards import _digest

    run = make_run(tmp_path / "runs", "k", n=4, failed=0, infeasible=0, events=[{"event": "run_started"}])
    run_study(run).ask().set_user_attr("pattern", "LL-LL-LLLL-SS")  # a trial being measured
    lock, there = run / ".driver.lock", "running on gpu-node-7 (pid 999999999), not checked from here"
    assert socket.gethostname() != "gpu-node-7"
    lock.write_text("999999999 12.0 gpu-node-7\n")  # no process here has that pid: it runs on gpu-node-7
    before = _digest(run)
    code, out, err = _run(capsys, "pareto", run, "--all", "--no-reports")
    assert code == 0 and not err
    assert "0 failed, 1 running)" in out and "interrupted" not in out and "left running" not in out
    assert f"driver: {there}" in " ".join(out.split())  # as rich wraps it or not
    listed = json.loads(_run(capsys, "runs", "--runs-dir", tmp_path / "runs", "--json")[1])[0]
    assert (listed["state"], listed["running"], listed["left_running"]) == (there, 1, 0)
    assert there in _run(capsys, "runs", "--runs-dir", tmp_path / "runs")[1]
    assert _digest(run) == before

    lock.write_text("999999999 12.0\n")  # an older version's lock, of a pid dead here: as before
    out = _run(capsys, "pareto", run, "--all", "--no-reports")[1]
    listed = json.loads(_run(capsys, "runs", "--runs-dir", tmp_path / "runs", "--json")[1])[0]
    assert "0 failed, 1 interrupted)" in out and "driver:" not in out
    assert (listed["state"], listed["running"], listed["left_running"]) == ("stopped", 0, 1)
    me = psutil.Process()
    lock.write_text(f"{me.pid} {me.create_time()}\n")  # an older version's lock, of a live pid
    out = _run(capsys, "pareto", run, "--all", "--no-reports")[1]
    listed = json.loads(_run(capsys, "runs", "--runs-dir", tmp_path / "runs", "--json")[1])[0]
    assert "0 failed, 1 running)" in out and "driver:" not in out
    assert (listed["state"], listed["running"], listed["left_running"]) == ("running", 1, 0)


def test_tables_stay_aligned_with_long_names(tmp_path, capsys):
    """Default run names (small-8softmax-20261129-033346) are longer than the table's 20 columns."""
    root = tmp_path / "runs"
    make_run(root, "small-8softmax-20261129-033346", n=4, budget="1softmax,0.15gmacs")
    make_run(root, "b", n=4)
    for argv in (["runs", "--runs-dir", root], ["compare", root / "small-8softmax-20261129-033346", root / "b"]):
        lines = _run(capsys, *argv)[1].splitlines()
        at = lines[0].index("variant")
        assert [line[at:at + 5] for line in lines[1:3]] == ["micro", "micro"], lines


def test_runs_table_stays_aligned_with_long_states(tmp_path, capsys):
    """A run stopped by --time is `finished (time)`, longer than the state column's 12 characters."""
    root = tmp_path / "runs"
    make_run(root, "a", n=4, events=[{"event": "run_started"}, {"event": "run_finished", "stopped": "time"}])
    make_run(root, "b", n=4, events=[{"event": "run_started"}, {"event": "run_finished", "stopped": "exhausted"}])
    make_run(root, "c", n=4)
    lines = _run(capsys, "runs", "--runs-dir", root)[1].splitlines()
    at = lines[0].index("variant")
    assert [line[at:at + 5] for line in lines[1:4]] == ["micro"] * 3, lines
    assert "finished (time)" in lines[1] and "finished (exhausted)" in lines[2]


def test_a_top1_reference_in_percent_is_refused(runs, capsys):
    """`--ref 50,1` meant 50 %: it printed hypervolume 0.0000 and exited 0."""
    for ref in ("50,1", "-0.1,1"):
        code, out, err = _run(capsys, "pareto", runs / "a", f"--ref={ref}", "--no-reports")
        assert code == 2 and not out and err.count("\n") == 1
        assert f"--ref '{ref}': top-1 {ref.split(',')[0]} is outside 0 to 1" in err and "0.5 for 50 %" in err, err
    assert _run(capsys, "compare", runs / "a", runs / "b", "--ref", "50,1")[0] == 2


def test_a_loss_reference_may_exceed_1(tmp_path, capsys):
    """Only top-1 is a fraction: a `--score loss` run's reference is a loss, any size."""
    make_run(tmp_path, "loss", n=6, score="val_loss")
    code, out, err = _run(capsys, "pareto", tmp_path / "loss", "--ref", "50,1", "--no-reports")
    assert code == 0 and not err and "at reference (val loss 50, 1.000 GMACs)" in out
    hv = float(re.search(r"hypervolume (\S+)", out).group(1))
    assert hv > 0


def test_a_reference_no_point_beats_is_warned_of(runs, tmp_path, capsys):
    """A hypervolume of 0 because the reference is beyond the front says so, and still exits 0."""
    code, out, err = _run(capsys, "pareto", runs / "a", "--ref", "1,1", "--no-reports")
    assert code == 0 and "hypervolume 0.0000" in out
    assert err.count("\n") == 1 and err.startswith("warning: no point of the front is better than the reference "
                                                    "(top-1 1, 1.000 GMACs)"), err
    code, out, err = _run(capsys, "pareto", runs / "a", "--ref", "0.3,1", "--no-reports")
    assert code == 0 and not err
    make_run(tmp_path, "loss", n=6, score="val_loss")
    code, _, err = _run(capsys, "pareto", tmp_path / "loss", "--ref", "0.1,1", "--no-reports")
    assert code == 0 and "than the reference (val loss 0.1, 1.000 GMACs)" in err and "higher val loss" in err
    code, _, err = _run(capsys, "compare", runs / "a", runs / "b", "--ref", "1,1")
    assert code == 0 and err.count("warning: run a: no point of the front") == 1 and "warning: run b:" in err


@pytest.mark.parametrize("argv,message", [
    (["pareto", "{tmp}/nope"], "no such run directory"),
    (["pareto", "{tmp}"], "no study.db"),
    (["pareto"], "no run given"),
    (["pareto", "--study", "a"], "--study needs --storage"),
    (["pareto", "--storage", "sqlite:///{tmp}/none.db"], "no study database"),
    (["pareto", "--storage", "sqlite:///{runs}/a/study.db", "--study", "zz"], "no study 'zz'"),
    (["pareto", "--storage", "bogus://x"], "cannot open storage"),
    (["pareto", "{runs}/a", "--plot", "{tmp}/f.jpg"], "expected a file name ending in .png, .svg, .pdf or .html"),
    (["pareto", "{runs}/a", "--plot", "{runs}/a/study.db/f.png"], "study.db is not a directory"),
    (["compare", "{runs}/a", "--plot", "{runs}/a/run.json/f.png"], "run.json is not a directory"),
    (["pareto", "{runs}/a", "--ref", "x"], "--ref 'x': expected TOP1,GMACS"),
    (["compare", "{runs}/a", "{tmp}/nope"], "no such run directory"),
    (["runs", "--runs-dir", "{tmp}/nope"], "no such directory"),
    (["export", "{runs}/a", "--pick", "knee", "--out", "{runs}/a/study.db/k.json"], "study.db is not a directory"),
])
def test_bad_input_is_one_line_and_exit_2(runs, capsys, tmp_path, argv, message):
    code, out, err = _run(capsys, *[a.format(tmp=tmp_path, runs=runs) for a in argv])
    assert code == 2 and not out
    assert err.count("\n") == 1 and err.startswith("sola-search: error: ") and message in err


def test_unknown_format_is_an_argparse_error(runs, capsys):
    with pytest.raises(SystemExit) as e:
        main(["pareto", str(runs / "a"), "--format", "xml"])
    _, err = capsys.readouterr()
    assert e.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'xml'" in err


def _gone_reader(*argv) -> subprocess.CompletedProcess:
    """`sola-search ARGV | head -0`, deterministically: stdout is a real pipe whose read end is closed
    before the command starts, so its first write finds no reader (EPIPE), as after `head` exits."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", "sola_search.cli", *map(str, argv)], stdout=w,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(w)


@pytest.mark.parametrize("argv", [["runs", "--runs-dir", "{runs}", "--json"], ["pareto", "{runs}/a", "--no-reports"],
                                  ["show", "late-stages", "--json"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(runs, argv):
    """`sola-search runs --json | head -3` ends as `cat file | head -3` does: no traceback, and the
    status 141 (128 + SIGPIPE) that a coreutils tool killed by SIGPIPE leaves for `set -o pipefail`."""
    p = _gone_reader(*[a.format(runs=runs) for a in argv])
    assert (p.returncode, p.stderr) == (141, "")


def test_piped_summary_lines_are_whole(runs, capsys):
    """Piped, `pareto`'s summary lines were wrapped at the table's width (`knee: trial 2 (farthest … chord
    from cheapest to most accurate,` then `normalized)` on a line of its own; a long run path cut the one-seed
    note's second line too):
    a pipe or a file now gets each summary line whole, as pareto.json keeps it; a terminal still wraps."""
    code, out, _ = _run(capsys, "pareto", runs / "a")  # stdout is not a terminal here
    summary = json.loads((runs / "a" / "reports" / "pareto.json").read_text())["summary"]
    assert code == 0 and any(len(line) > 120 for line in summary)
    lines = out.splitlines()
    assert all(line in lines for line in summary), (summary, lines)
