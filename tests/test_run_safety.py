"""What a run keeps safe when it is killed, its disk fills up or its study is lost (issue 19): work
it owes is measured, no pattern file is lost or overwritten, and a directory it made resumes. Real
runs (micro, quick, a few steps) on a real local Ray and a real SQLite study."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest
from cli_support import run_study
from optuna.trial import TrialState
from test_guards import _digest, _fails
from test_results_support import make_run

import sola_search.results.patterns as patterns_module
from sola_search.cli import main
from sola_search.results.patterns import load_pattern_file, pattern_record_from_trial, write_pattern_file
from sola_search.search import SearchConfig, resume_search, run_search
from sola_search.search.runner import prepare
from sola_search.space import Budget, baselines

pytestmark = pytest.mark.usefixtures("shared_ray")  # one Ray instance, not one per search


def _config(tmp_path: Path, data: str, **kw) -> SearchConfig:
    base = dict(budget="8softmax", variant="micro", trials=2, preset="quick", steps=3, data=data, name="k",
                runs_dir=str(tmp_path / "runs"), seed=0)
    return SearchConfig(**{**base, **kw})


def _measured(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["pattern"]: t for t in study.trials
            if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs}


@pytest.mark.slow
@pytest.mark.extended  # CI leaves it out (its 15 minutes): the kill -9 and Ctrl-C tests resume re-queued work too
def test_requeued_work_goes_ahead_of_the_queue_and_is_measured_before_the_run_ends(tmp_path, npz_data):
    """A killed driver's trial and a failed baseline's retry used to be queued behind the other
    baselines: `resume` reached --trials on those and reported done with both left WAITING."""
    base = baselines("micro", Budget.parse("8softmax"), 224)
    names = list(base)  # all-linear, late-stages, last-of-stage, mambavision, ...
    run_search(_config(tmp_path, npz_data, faults={str(base[names[0]]): "raise"}), quiet=True)
    run_dir = tmp_path / "runs" / "k"
    study = run_study(run_dir)
    assert [t.state for t in study.trials[:2]] == [TrialState.FAIL, TrialState.COMPLETE]
    cut = study.ask()  # what kill -9 leaves: the next baseline taken off the queue, RUNNING for good
    assert cut.number == 2 and study.trials[2].state == TrialState.RUNNING

    summary = resume_search(run_dir, trials=3, quiet=True)
    after = run_study(run_dir)
    assert not [t for t in after.trials if t.state == TrialState.WAITING and "retry_of" in t.user_attrs]
    assert str(base[names[2]]) in _measured(after)  # the interrupted baseline, measured after all
    retry = [t for t in after.trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].user_attrs["status"] == "error"  # tried again (and failed again)
    assert after.trials[3].state == TrialState.WAITING  # the next baseline waited its turn
    assert summary.stopped == "done" and summary.completed == 2 and summary.failed == 2


@pytest.mark.slow
def test_resume_says_what_it_recovered_from_a_killed_run(tmp_path, npz_data, capsys):
    """`resume` after a kill -9 mid-trial found that trial RUNNING, failed it as interrupted and queued
    its pattern again, and said nothing of it. It now says so in one line."""
    base = baselines("micro", Budget.parse("8softmax"), 224)
    name, pattern = list(base.items())[1]
    run_search(_config(tmp_path, npz_data, trials=1), quiet=True)
    run_dir = tmp_path / "runs" / "k"
    cut = run_study(run_dir).ask()  # what kill -9 mid-trial leaves: the next baseline taken, training, never told
    cut.set_user_attr("pattern", str(pattern))

    assert main(["resume", str(run_dir), "--trials", "2"]) == 0
    err = capsys.readouterr().err
    after = run_study(run_dir)
    [retry] = [t.number for t in after.trials if t.user_attrs.get("retry_of") == cut.number]
    line = (f"recovered: trial {cut.number} ({pattern}, baseline {name}) was left running when the run stopped: "
            f"marked interrupted, its pattern is measured again first, as trial {retry}\n")
    assert err.count("recovered:") == 1 and line in err, err
    assert after.trials[cut.number].user_attrs["status"] == "interrupted"
    assert _measured(after)[str(pattern)].number == retry  # what the line said was done


def test_the_recovery_line_names_each_trial_and_what_became_of_it():
    """Trials of both kinds a kill leaves RUNNING: one with its pattern (queued again) and one cut off
    before it had a pattern (nothing to measure)."""
    from sola_search.search.runner import _recovered_note
    from sola_search.search.study import recover_interrupted

    study = optuna.create_study(directions=["maximize", "minimize"])
    for params in ({"b0": 0}, {"b0": 1}):
        study.enqueue_trial(params)
    for _ in range(2):
        study.ask().set_user_attr("pattern", "LL-LL-LLLL-LS")
    study.ask()  # nothing queued: a trial with no parameters, killed before its suggestions
    numbers = recover_interrupted(study)
    assert _recovered_note(study, numbers) == (
        "recovered: trials 0 (LL-LL-LLLL-LS), 1 (LL-LL-LLLL-LS) were left running when the run stopped: marked "
        "interrupted, their patterns are measured again first, as trials 3, 4; trial 2 had no pattern yet: marked "
        "interrupted, nothing to measure again")


def _with_pattern_files(run: Path) -> list[int]:
    study = run_study(run)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and "pattern" in t.user_attrs][:3]
    for t in done:
        write_pattern_file(run / "patterns" / f"{t.number}.json", pattern_record_from_trial(study, t))
    return [t.number for t in done]


@pytest.fixture
def made(tmp_path, npz_data) -> Path:
    run = make_run(tmp_path / "runs", "r", n=4, events=[{"event": "run_started"}])
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "data": npz_data, "preset": "quick", "steps": 3}))
    _with_pattern_files(run)
    return run


def test_pattern_files_of_a_lost_study_are_evidence_and_never_overwritten(made, capsys):
    """With study.db and events.jsonl both gone, resume used to start an empty study and write
    its first measurement over patterns/0.json."""
    (made / "study.db").unlink()
    (made / "events.jsonl").unlink()
    before = _digest(made)
    _fails(capsys, ["resume", made], "its study database")
    err = _fails(capsys, ["resume", made], "though patterns/ holds 3 pattern file(s) of it")
    assert "nothing was resumed" in err
    assert _digest(made) == before and not (made / "study.db").exists()


def test_a_pattern_file_of_another_study_is_never_overwritten(made, capsys):
    """A new study under the old name (a lost study.db replaced): its trial 0 would have been
    written over the old study's patterns/0.json."""
    (made / "study.db").unlink()
    optuna.create_study(study_name="r", storage=f"sqlite:///{made / 'study.db'}",
                        directions=["maximize", "minimize"])
    before = _digest(made)
    _fails(capsys, ["resume", made], f"{made}/patterns/0.json is not the file of trial 0 of its study "
                                     "(it records trial 0 of study 'r'")
    assert _digest(made) == before


@pytest.mark.slow
@pytest.mark.extended  # CI leaves it out (its 15 minutes): test_hostile's full disk during a study write stays
def test_a_full_disk_when_a_pattern_file_is_written_stops_the_run_and_resume_writes_it(
        tmp_path, npz_data, capsys, monkeypatch):
    """The study had the trial COMPLETE, the file never appeared, the exit status said bad input
    (2), and no resume ever wrote it; a kill -9 mid-write also left its temporary file behind."""
    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(patterns_module, "write_atomic", full)
    runs = tmp_path / "runs"
    argv = ["run", "--budget", "8softmax", "--variant", "micro", "--preset", "quick", "--steps", "3",
            "--trials", "2", "--data", npz_data, "--name", "full", "--runs-dir", runs, "--quiet"]
    assert main([str(a) for a in argv]) == 1
    out, err = capsys.readouterr()
    run_dir = runs / "full"
    assert err.count("\n") == 1 and "No space left on device" in err and f"sola-search resume {run_dir}" in err
    study = run_study(run_dir)
    assert study.trials[0].state == TrialState.COMPLETE and not (run_dir / "patterns" / "0.json").exists()
    stale = run_dir / "patterns" / ".0.json.4242.0badf00d.tmp"  # what a kill -9 mid-write leaves
    stale.write_text("{")
    monkeypatch.undo()

    assert main(["resume", str(run_dir), "--quiet"]) == 0
    capsys.readouterr()
    rec = load_pattern_file(run_dir / "patterns" / "0.json")
    assert rec["provenance"]["trial"] == 0 and rec["pattern"] == study.trials[0].user_attrs["pattern"]
    assert not stale.exists()
    measured = _measured(run_study(run_dir))
    assert len(measured) == 2
    assert {p.name for p in (run_dir / "patterns").iterdir()} == {f"{t.number}.json" for t in measured.values()}


@pytest.mark.slow
@pytest.mark.extended  # CI leaves it out (its 15 minutes): test_search's kill -9 mid-run stays
def test_kill_minus_nine_during_ray_start_up_leaves_a_run_that_resumes(tmp_path, npz_data):
    """run.json used to be stored after Ray had started: a kill -9 before then left study.db,
    .driver.lock and patterns/ that neither `resume` nor `run --name` would take."""
    runs = tmp_path / "runs"
    run_dir = runs / "k1"
    cmd = [sys.executable, "-m", "sola_search.cli", "run", "--budget", "8softmax", "--variant", "micro",
           "--trials", "1", "--preset", "quick", "--steps", "3", "--data", npz_data, "--name", "k1",
           "--runs-dir", str(runs), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (run_dir / "study.db").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # storage open, Ray about to start (or starting)
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of this test's own session still there
        except ProcessLookupError:
            pass
    assert (run_dir / "run.json").is_file()
    assert not (run_dir / "events.jsonl").exists()  # the run had not started
    assert main(["resume", str(run_dir), "--quiet"]) == 0
    assert len(_measured(run_study(run_dir))) == 1
    assert json.loads((run_dir / "run.json").read_text())["preset"] == "quick"
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE


def test_the_same_run_command_continues_a_run_stored_before_its_preset_was_chosen(tmp_path, npz_data):
    """run.json is stored before Ray starts, with no preset when the machine is to choose it:
    repeating the `run` command with --preset must continue that run, not be refused."""
    (tmp_path / "runs" / "k").mkdir(parents=True)
    stored = _config(tmp_path, npz_data, preset=None).to_dict()
    (tmp_path / "runs" / "k" / "run.json").write_text(json.dumps({**stored, "variant": "micro", "resolution": 224}))
    plan = prepare(_config(tmp_path, npz_data, preset="quick"))
    assert plan.resuming and plan.config.preset == "quick"
