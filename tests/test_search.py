"""The search end to end on a real local Ray and a real SQLite study: budget, files, failures, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import optuna
import psutil
import pytest
from cli_support import run_study
from optuna.trial import TrialState

from sola_search.cli import main
from sola_search.errors import SolaError
from sola_search.results.patterns import load_pattern_file
from sola_search.search import SearchConfig, resume_search, run_search
from sola_search.search.runner import MaxFailures
from sola_search.space import Budget, Pattern, baselines

BUDGET = "2softmax"
pytestmark = pytest.mark.usefixtures("shared_ray")  # one Ray instance, not one per search


def _config(tmp_path: Path, data: str, **kw) -> SearchConfig:
    base = dict(budget=BUDGET, variant="micro", trials=6, preset="quick", steps=3, data=data, name="t",
                runs_dir=str(tmp_path / "runs"), seed=0)
    return SearchConfig(**{**base, **kw})


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_search_end_to_end(tmp_path, npz_data):
    summary = run_search(_config(tmp_path, npz_data), quiet=True)
    run_dir = tmp_path / "runs" / "t"
    assert summary.completed == 6 and summary.failed == 0 and summary.stopped == "done"

    study = run_study(run_dir)
    assert study.metric_names == ["val_top1", "gmacs"]
    assert study.user_attrs["variant"] == "micro" and study.user_attrs["budget"] == BUDGET
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 6
    budget = Budget.parse(BUDGET)
    patterns = [Pattern.parse(t.user_attrs["pattern"], "micro") for t in done]
    assert all(budget.admits(p, "micro", 224) for p in patterns)
    assert len(set(patterns)) == 6  # nothing measured twice
    assert {t.user_attrs["estimator"] for t in done} == {"train"}  # every trial says which estimator measured it
    # Baselines that fit the budget come first, each once.
    base = baselines("micro", budget, 224)
    first = [t.user_attrs.get("baseline") for t in study.trials[: len(base)]]
    assert sorted(first) == sorted(base)
    # One pattern file per completed trial, loadable and consistent with the study.
    for t in done:
        rec = load_pattern_file(run_dir / "patterns" / f"{t.number}.json")
        assert rec["pattern"] == t.user_attrs["pattern"] and rec["variant"] == "micro"
        assert rec["metrics"]["val_top1"] == pytest.approx(t.values[0])
        assert rec["metrics"]["macs"] == t.user_attrs["macs"] and rec["provenance"]["trial"] == t.number
    cfg = json.loads((run_dir / "run.json").read_text())
    assert cfg["budget"] == BUDGET and {"torch", "optuna", "ray", "sola_search"} <= set(cfg["versions"])
    kinds = [e["event"] for e in _events(run_dir)]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished" and kinds.count("trial_finished") == 6
    _assert_workers_warmed_up(_events(run_dir))

    # Asking for more resumes the same study: the 6 are kept, 2 more are measured.
    summary = run_search(_config(tmp_path, npz_data, trials=8), quiet=True)
    done = [t for t in run_study(run_dir).trials
            if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    assert summary.completed == 8 and len(done) == 8 and len({t.user_attrs["pattern"] for t in done}) == 8

    # A resume with another budget is refused (it would mix two searches in one study).
    with pytest.raises(SolaError, match="was made with budget '2softmax', not '3softmax'"):
        run_search(_config(tmp_path, npz_data, budget="3softmax", trials=9), quiet=True)


def _assert_workers_warmed_up(events: list[dict]) -> None:
    """Each worker pays its one-off costs (data, kernels) in `warm`, before any trial starts on it;
    every finished trial says where its time went. Ray nices its workers to 15, which on a busy
    machine left a trial a sliver of the CPU: a worker keeps the driver's priority and uses as many
    torch threads as the CPUs Ray gave it. (Checked on the end-to-end run: a run of its own cost a
    worker's start-up and warm-up for nothing.)"""
    ready = [i for i, e in enumerate(events) if e["event"] == "worker_ready"]
    started = [i for i, e in enumerate(events) if e["event"] == "trial_started"]
    assert len(ready) == 1 and ready[0] < started[0]
    warm = events[ready[0]]
    assert warm["status"] == "ok" and warm["kernels_s"] > 0 and warm["data_s"] >= 0 and warm["init_s"] >= 0
    assert warm["nice"] == os.getpriority(os.PRIO_PROCESS, 0)
    cpus = next(e for e in events if e["event"] == "run_started")["resources"]["cpus"]
    assert warm["threads"] == max(1, int(cpus))  # one worker on a CPU machine: all of them
    finished = [e for e in events if e["event"] == "trial_finished"]
    assert {e["worker"] for e in finished} == {warm["pid"]}
    assert all(set(e["phases"]) >= {"build", "capture", "train", "eval", "cleanup"} for e in finished)


def test_a_long_trial_reports_its_progress_to_the_event_log(tmp_path, npz_data, monkeypatch):
    """Nothing was printed for minutes inside a trial: the driver asks the busy worker how far its
    training is, logs it (`trial_progress`: step, steps, images/s, time left) and shows it."""
    import sola_search.search.pool as pool

    monkeypatch.setattr(pool, "PROGRESS_POLL_S", 0.05)
    run_search(_config(tmp_path, npz_data, trials=1, steps=12), quiet=True)  # polled every 0.05 s: ~5 s is long
    events = _events(tmp_path / "runs" / "t")
    kinds = [e["event"] for e in events]
    progress = [e for e in events if e["event"] == "trial_progress"]
    assert progress, kinds
    assert kinds.index("trial_started") < kinds.index("trial_progress") < kinds.index("trial_finished")
    assert all(e["trials"] == [0] and e["steps"] == 12 and 1 <= e["step"] <= 12 for e in progress)
    assert all(e["images_per_s"] > 0 and e["eta_s"] >= 0 and e["phase"] == "train" for e in progress)


def test_failures_are_recorded_and_the_search_goes_on(tmp_path, npz_data):
    """A trial that raises, runs out of memory or diverges fails alone; a worker whose process dies
    (segfault, OOM killer) fails its pack saying so, and a new worker warms up and measures the rest.
    (With `--ahead 1` a pack queued behind the one it died in never ran: re-queued, not failed: test_ahead.)"""
    base = baselines("micro", Budget.parse("4softmax"), 224)  # five baselines: four to fail, one to pass
    names = list(base)[:4]
    faults = {str(base[n]): kind for n, kind in zip(names, ("raise", "oom", "nan", "die"), strict=True)}
    summary = run_search(_config(tmp_path, npz_data, budget="4softmax", faults=faults, max_failures=5), quiet=True)
    assert summary.failed == 4 and summary.completed == 2
    study = run_study(tmp_path / "runs" / "t")
    failed = {t.user_attrs["pattern"]: t for t in study.trials
              if t.state == TrialState.FAIL and t.user_attrs["status"] != "interrupted"}
    measured = {t.user_attrs["pattern"] for t in study.trials if t.state == TrialState.COMPLETE}
    assert all(t.user_attrs["pattern"] in measured for t in study.trials
               if t.user_attrs.get("status") == "interrupted")  # re-queued and measured after all
    assert {p: t.user_attrs["status"] for p, t in failed.items()} == {
        p: {"raise": "error", "oom": "oom", "nan": "nan", "die": "error"}[k] for p, k in faults.items()}
    assert all(t.user_attrs["reason"] for t in failed.values())
    assert "injected failure" in next(t for p, t in failed.items() if faults[p] == "raise").user_attrs["reason"]
    assert "worker process died" in next(t for p, t in failed.items() if faults[p] == "die").user_attrs["reason"]
    events = _events(tmp_path / "runs" / "t")
    ready = [e["pid"] for e in events if e["event"] == "worker_ready"]
    assert len(ready) == 2 and ready[0] != ready[1]  # the replacement


@pytest.mark.slow
@pytest.mark.extended  # CI's 15 minutes (23 s + the plain run's 15 s; a fresh clone's CI took 781 s with it); packs
# are also run by the Ctrl-C and `--pack` tests, and a pack's results equal each run alone in test_proxies
def test_a_search_in_packs_measures_what_one_trial_at_a_time_does(tmp_path, npz_data, plain_run):
    """--pack 3: a worker trains three trials together; each trial's result is its run alone (the
    session's plain run: this configuration one trial at a time). A pattern that diverges fails
    alone; the last pack of a run is as short as the count needs."""
    base = baselines("micro", Budget.parse(BUDGET), 224)
    nan = str(list(base.values())[1])
    run_search(_config(tmp_path, npz_data, trials=7, pack=3, faults={nan: "nan"}, name="packed"), quiet=True)
    packed, alone = run_study(tmp_path / "runs" / "packed"), run_study(plain_run)
    assert {e["pack"] for e in _events(plain_run) if e["event"] == "trial_started"} == {1}  # one at a time
    events = _events(tmp_path / "runs" / "packed")
    assert [e["pack"] for e in events if e["event"] == "trial_started"] == [3, 3, 3, 3, 3, 3, 1]
    state = {t.user_attrs["pattern"]: t.state for t in packed.trials}
    assert state[nan] == TrialState.FAIL and sum(s == TrialState.COMPLETE for s in state.values()) == 6
    top1 = {t.user_attrs["pattern"]: t.values[0] for t in packed.trials if t.state == TrialState.COMPLETE}
    shared = [t for t in alone.trials if t.state == TrialState.COMPLETE and t.user_attrs["pattern"] in top1]
    assert len(shared) >= 2  # the baselines come first in both
    assert all(top1[t.user_attrs["pattern"]] == t.values[0] for t in shared)
    # trained together: 2 of the first pack (its diverging pattern ran alone), 3, then the last one
    assert sorted(t.user_attrs["proxy_result"]["packed"] for t in packed.trials
                  if t.state == TrialState.COMPLETE) == [1, 2, 2, 3, 3, 3]


def test_run_command_says_when_workers_are_ready_and_packs_with_pack(tmp_path, npz_data, capsys):
    argv = ["run", "--budget", BUDGET, "--variant", "micro", "--trials", "2", "--preset", "quick", "--steps", "3",
            "--data", npz_data, "--runs-dir", str(tmp_path / "runs"), "--name", "v", "--pack", "2"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "ready after" in out.out + out.err  # the warm-up is not silent
    # --trials 2 with 3 baselines would measure no proposal: said at the start
    assert "the first 3 trials are the baselines (all-linear, last-2, interleave-2): --trials 2 measures no " \
           "proposal" in out.err and "--no-baselines" in out.err
    started = [e for e in _events(tmp_path / "runs" / "v") if e["event"] == "trial_started"]
    assert [e["pack"] for e in started] == [2, 2]


def test_no_baselines_measures_proposals_only_and_a_resume_keeps_it(tmp_path, npz_data, capsys):
    """--no-baselines: no baseline is queued; run.json stores it, so a resume (by `resume` or by
    `run --name`) keeps it, and a resume cannot turn it back on silently."""
    from sola_search.search.runner import prepare

    argv = ["run", "--budget", BUDGET, "--variant", "micro", "--trials", "2", "--preset", "quick", "--steps", "2",
            "--data", npz_data, "--runs-dir", str(tmp_path / "runs"), "--name", "nb", "--no-baselines"]
    assert main(argv) == 0
    assert "are the baselines" not in capsys.readouterr().err
    run_dir = tmp_path / "runs" / "nb"
    done = [t for t in run_study(run_dir).trials if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and not any("baseline" in t.user_attrs for t in done)
    assert json.loads((run_dir / "run.json").read_text())["baselines"] is False
    plan = prepare(SearchConfig(budget=BUDGET, name="nb", runs_dir=str(tmp_path / "runs")))
    assert plan.resuming and plan.config.baselines is False
    with pytest.raises(SolaError, match="made with baselines False, not True"):
        prepare(SearchConfig(budget=BUDGET, name="nb", runs_dir=str(tmp_path / "runs"), baselines=True))


def test_a_budget_that_admits_every_pattern_is_said_and_one_that_admits_none_refused(tmp_path, npz_data, capsys):
    """micro has 10 blocks: 100softmax limits nothing (accepted, with one warning line), 0.01gmacs
    admits nothing (refused)."""
    from sola_search.search.runner import prepare

    prepare(_config(tmp_path, npz_data, budget="100softmax"))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: budget 100softmax admits every pattern of micro at 224px" in err
    prepare(_config(tmp_path, npz_data, budget="8softmax", name="u"))
    assert capsys.readouterr().err == ""
    with pytest.raises(SolaError, match="admits no pattern"):
        prepare(_config(tmp_path, npz_data, budget="0.01gmacs", name="v"))


def test_progress_line_shows_workers_warming_up():
    from sola_search.search.progress import SearchStats

    assert "2 worker(s) warming up" in SearchStats(target=8, deadline=None, warming=2).line()
    assert "warming" not in SearchStats(target=8, deadline=None).line()
    report = dict(phase="train", step=40, steps=100, images_per_s=123.4, eta_s=75.0)
    line = SearchStats(target=8, deadline=None, training={"pack": report}).line()
    assert "training step 40/100, 123 images/s, 0:01:15 left" in line


def test_max_failures_stops_the_run_and_a_resume_goes_on(tmp_path, npz_data):
    """--max-failures counts one session's failures: a resume goes on, and retries each failed
    baseline once (the faults are part of the run's configuration, so they fail again). One pack at a
    time (`--ahead 0`, kept by the resume): a pack asked ahead before the limit was reached would still
    run, and fail a third time, as the packs of other workers do."""
    base = baselines("micro", Budget.parse(BUDGET), 224)
    faults = {str(p): "raise" for p in base.values()}
    with pytest.raises(MaxFailures, match="stopped after 2 failed trials"):
        run_search(_config(tmp_path, npz_data, faults=faults, max_failures=2, ahead=0), quiet=True)
    run_dir = tmp_path / "runs" / "t"
    summary = resume_search(run_dir, max_failures=4, quiet=True)
    assert summary.stopped == "done" and summary.failed == 5 and summary.completed == 1
    errors = {}
    for t in run_study(run_dir).trials:
        if t.user_attrs.get("status") == "error":
            errors.setdefault(t.user_attrs["baseline"], []).append(t.user_attrs.get("retry_of"))
    first, second, third = base
    assert len(errors[first]) == len(errors[second]) == 2 and len(errors[third]) == 1  # retried once
    assert errors[first][0] is None and errors[first][1] is not None


def _ray_processes_of(pids: set[int]) -> list[psutil.Process]:
    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


KILLED_RUN_TRIALS = 6  # enough to kill a run with trials done, running and still to come
KILLED_RUN_STEPS = 8  # ~2 s a trial on one core (a pack of two ~4.5 s): a cut lands mid-training, and every
#   trial the killed runs and their resumes measure is cheap (at 40 steps these tests took 4 of CI's 15 minutes,
#   at 15 steps ~2)
INTO_TRIAL_S = 0.5  # how long a trial has run when the cut comes: past building its model (~0.03 s), into its
#   steps, and well before its last (the event log is read every 0.2 s)


def _start_run(runs: Path, name: str, data: str, finished: int, extra: tuple[str, ...] = (),
               **popen) -> tuple[subprocess.Popen, set[int]]:
    """`sola-search run` in a subprocess, returned once `finished` trials are done and another has been
    training for INTO_TRIAL_S (by the event log's clock), so that a signal sent then cuts a trial
    mid-training; with the pids of every process it had started by then (Ray's included)."""
    cmd = [sys.executable, "-m", "sola_search.cli", "run", "--budget", BUDGET, "--variant", "micro",
           "--trials", str(KILLED_RUN_TRIALS), "--preset", "quick", "--steps", str(KILLED_RUN_STEPS), "--data", data,
           "--name", name, "--runs-dir", str(runs), "--quiet", "--workers", "2", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, **popen)
    seen: set[int] = set()
    deadline = time.time() + 240
    while time.time() < deadline:
        seen |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        if (runs / name / "events.jsonl").exists():
            events = _events(runs / name)
            done = {e["trial"] for e in events if e["event"] == "trial_finished"}
            now = datetime.now(UTC)
            training = [e for e in events if e["event"] == "trial_started" and e["trial"] not in done
                        and (now - datetime.fromisoformat(e["time"])).total_seconds() >= INTO_TRIAL_S]
            if len(done) >= finished and training:
                return proc, seen
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the run did not finish {finished} trials and train another in time")


def _wait_gone(pids: set[int], seconds: float = 20) -> list[psutil.Process]:
    deadline = time.time() + seconds
    while _ray_processes_of(pids) and time.time() < deadline:
        time.sleep(0.5)
    return _ray_processes_of(pids)


@pytest.mark.slow
def test_kill_minus_nine_then_resume(tmp_path, npz_data, capsys):
    """kill -9 of the driver mid-run: no Ray process survives it; `pareto` calls the trials it cut off
    interrupted, not running; resume says it recovered them, keeps every completed trial, re-measures
    the interrupted ones and reaches the requested count exactly. Those cut off include packs asked
    ahead (`--ahead 1`), queued behind a worker's running one."""
    runs = tmp_path / "runs"
    run_dir = runs / "k"
    proc, seen = _start_run(runs, "k", npz_data, finished=3, extra=("--ahead", "1"), stderr=subprocess.DEVNULL)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = _wait_gone(seen)
    assert not left, f"left behind: {[p.name() for p in left]}"
    # The run started its own Ray (`cluster.worker_settings`): its workers began with torch imported, at
    # the driver's priority, with no runtime_env of their own.
    ready = [e for e in _events(run_dir) if e["event"] == "worker_ready"]
    assert ready and all(e["preloaded"] and e["nice"] == os.getpriority(os.PRIO_PROCESS, 0) for e in ready), ready

    before = run_study(run_dir)
    completed_before = {t.user_attrs["pattern"] for t in before.trials if t.state == TrialState.COMPLETE}
    running_before = [t for t in before.trials if t.state == TrialState.RUNNING]
    assert len(completed_before) >= 3
    queued = {e["trial"] for e in _events(run_dir) if e["event"] == "trial_started" and e.get("queued")}
    assert queued & {t.number for t in running_before}

    assert main(["pareto", str(run_dir), "--no-reports"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"0 failed, {len(running_before)} interrupted)" in out and "left running when the run stopped" in out
    assert main(["resume", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert err.count("recovered: ") == 1 and "left running when the run stopped: marked interrupted" in err, err
    after = run_study(run_dir)
    measured = [t for t in after.trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    assert len(measured) == KILLED_RUN_TRIALS
    assert len({t.user_attrs["pattern"] for t in measured}) == KILLED_RUN_TRIALS  # nothing re-run
    assert completed_before <= {t.user_attrs["pattern"] for t in measured}  # nothing lost
    for t in running_before:  # interrupted trials are FAIL and their patterns measured after all
        t2 = after.trials[t.number]
        assert t2.state == TrialState.FAIL and t2.user_attrs["status"] == "interrupted"
        if "pattern" in t.user_attrs:
            assert t.user_attrs["pattern"] in {m.user_attrs["pattern"] for m in measured}
        else:  # killed before its pattern was recorded (after `ask`, maybe after the suggestions): re-queued
            #   exactly when it had parameters, suggested or fixed (an enqueued baseline)
            retries = [u for u in after.trials if u.user_attrs.get("retry_of") == t.number]
            assert bool(retries) == bool(t.params or t.system_attrs.get("fixed_params"))


@pytest.mark.slow
def test_join_a_cluster_with_address(tmp_path, npz_data, monkeypatch, no_ray):
    """A cluster of our own (its own port and temp dir, `ray start --block`), stopped by signalling
    that command: `ray stop` would stop every Ray instance of the machine, a developer's too. Started
    the default way, where a token exists (~/.ray/auth_token, which any local `ray.init` writes) the
    head requires it; the driver, given the address and no RAY_AUTH_MODE, must send it. (A token of
    the test's own would not do: Ray's driver reads its token once per process.)"""
    ray_bin = str(Path(sys.executable).with_name("ray"))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    if not (Path.home() / ".ray" / "auth_token").is_file():
        subprocess.run([ray_bin, "get-auth-token", "--generate"], capture_output=True, timeout=60, check=True)
    from ray.util import get_node_ip_address

    ip = get_node_ip_address()  # a driver joins as this address: a head on 127.0.0.1 would not be found
    with socket.socket() as s:
        s.bind((ip, 0))
        port = s.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    log = tmp_path / "head.log"
    with open(log, "w") as out:
        head = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}",
                                 f"--node-ip-address={ip}", f"--temp-dir={temp_dir}", "--num-cpus=2",
                                 "--include-dashboard=false", "--disable-usage-stats"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "block forever" not in log.read_text():  # printed once the head is up
            assert head.poll() is None, log.read_text()[-2000:]
            assert time.time() < deadline, "the head did not come up in 120 s"
            time.sleep(0.5)
        assert "Token authentication is enabled" in log.read_text()  # the head requires the token
        summary = run_search(_config(tmp_path, npz_data, trials=3, address=f"{ip}:{port}"), quiet=True)
        assert summary.completed == 3
        events = _events(tmp_path / "runs" / "t")
        assert events[0]["resources"]["address"] == f"{ip}:{port}"
        # The cluster's Ray is its own (nothing preloaded); each actor's runtime_env unnices its worker.
        ready = [e for e in events if e["event"] == "worker_ready"]
        assert ready and all(e["nice"] == os.getpriority(os.PRIO_PROCESS, 0) and not e["preloaded"] for e in ready)
    finally:
        head.send_signal(signal.SIGTERM)  # the blocked `ray start` stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_second_driver_of_a_shared_study_is_refused(tmp_path, npz_data, capsys):
    """Shared storage (PostgreSQL on a cluster; a SQLite file here): a second `run` of the same name from
    another runs directory would take over the first driver's running trials. The first driver's study is
    made here as a run leaves it mid-search (finished trials and a running one), not by a search of its own:
    the refusal reads only the storage, and CI's 15 minutes are short."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(study_name="plain", storage=url, directions=["maximize", "minimize"])
    for value in (0.5, 0.6):
        first.tell(first.ask(), [value, 0.1])
    first.ask()  # running: a worker of the first driver trains it
    before = [(t.number, t.state) for t in optuna.load_study(study_name="plain", storage=url).trials]
    other = tmp_path / "elsewhere"
    assert main(["run", "--budget", BUDGET, "--variant", "micro", "--storage", url, "--name", "plain", "--data",
                 npz_data, "--runs-dir", str(other)]) == 2
    err = capsys.readouterr().err
    assert "study plain already exists" in err and len(err.strip().splitlines()) == 1
    assert not other.exists()
    after = [(t.number, t.state) for t in optuna.load_study(study_name="plain", storage=url).trials]
    assert after == before and after[-1][1] == optuna.trial.TrialState.RUNNING  # the first run's study untouched


def test_a_runs_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["run", "--budget", "8softmax", "--runs-dir", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert f"--runs-dir {tmp_path / 'file'}: not a directory" in err and len(err.strip().splitlines()) == 1


def test_a_refused_token_says_what_to_do():
    from sola_search.search.cluster import _join_failure

    try:
        try:
            raise RuntimeError("RPC error: InvalidAuthToken: Authentication token is missing or incorrect")
        except RuntimeError as inner:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from inner
    except ConnectionError as e:
        assert "~/.ray/auth_token" in _join_failure(e)
    assert _join_failure(ConnectionError("no route\nmore")) == "no route"
    assert _join_failure(TimeoutError()) == "TimeoutError"  # no message: its type


@pytest.mark.parametrize("argv, message", [
    (["run", "--budget", "8softmx"], "budget term '8softmx'"),
    (["run", "--budget", "8softmax", "--trials", "0"], "--trials 0"),
    (["run", "--budget", "8softmax", "--time", "soon"], "duration 'soon'"),
    (["run", "--budget", "8softmax", "--name", "../x"], "--name '../x'"),
    (["run", "--budget", "8softmax", "--sampler", "magic"], "unknown sampler 'magic'"),
    (["run", "--budget", "8softmax", "--preset", "fast"], "preset 'fast'"),
    (["run", "--budget", "8softmax", "--variant", "huge"], "unknown variant 'huge'"),
    (["run", "--budget", "8softmax", "--gpus-per-trial", "-1"], "--gpus-per-trial -1"),
    (["run", "--budget", "8softmax", "--pack", "0"], "--pack 0"),
    (["run", "--budget", "8softmax", "--ahead", "2"], "--ahead 2: expected 0"),
    (["run", "--budget", "8softmax", "--pack", "8", "--gpus-per-trial", "0.25"], "a pack trains on one GPU"),
    (["run", "--budget", "0.001gmacs", "--variant", "micro"], "admits no pattern"),
    (["run", "--budget", "8softmax", "--data", "npz:/nonexistent.npz"], "nonexistent"),
    (["run", "--budget", "8softmax", "--trials", "many"], "invalid int value"),
    (["run", "--budget", "8softmax", "--storage", "postgresql://u:secret@127.0.0.1:1/none"],
     "cannot open study storage postgresql://u:***@127.0.0.1:1/none"),
    (["run", "--budget", "8softmax", "--storage", "nosuchdb://x"], "cannot open study storage nosuchdb://x"),
    (["resume", "/nonexistent/run"], "no run at /nonexistent/run"),
    (["run", "--budget", "8softmax", "--address", "127.0.0.1:1"], "nothing answers there"),  # not minutes of retries
    (["run", "--budget", "8softmax", "--address", "headnode"], "expected HOST:PORT"),
    (["run", "--budget", "8softmax", "--address", "fe80::1"], "expected HOST:PORT"),
    (["run", "--budget", "8softmax", "--address", "head:99999999999999999999"], "expected HOST:PORT"),
    (["run", "--budget", "8softmax", "--address", "http://head:8265"], "expected HOST:PORT"),
    (["run", "--budget", "8softmax", "--seed", "-1"], "--seed -1"),
])
def test_bad_options_are_one_line_and_status_2(tmp_path, capsys, argv, message):
    argv = [*argv, "--runs-dir", str(tmp_path)] if argv[0] == "run" else argv
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())  # nothing was created


@pytest.mark.slow
# Ctrl-C cutting a pack, and `kill` (SIGTERM) one trial at a time: the two signals take one path
# (`stop_signals`), so each case is one signal (a third run of ~30 s, every pairing, went for CI's time).
@pytest.mark.parametrize("sig, pack", [  # both signals take stop_signals' one path: CI runs one (its 15 minutes)
    pytest.param(signal.SIGINT, 2, id="ctrl-c-packs"),
    pytest.param(signal.SIGHUP, 1, id="hang-up", marks=pytest.mark.extended)])
def test_ctrl_c_requeues_running_trials_and_leaves_no_ray_process(tmp_path, npz_data, sig, pack):
    runs = tmp_path / "runs"
    run_dir = runs / "c"
    # A shell that starts jobs in the background ignores SIGINT for them; a terminal user's Ctrl-C does not.
    proc, seen = _start_run(runs, "c", npz_data, finished=2, extra=("--pack", str(pack)), stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"sola-search resume {runs}/c" in err
    assert not _wait_gone(seen)
    study = run_study(run_dir)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in study.trials if t.user_attrs.get("status") == "interrupted"]
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(interrupted) == len(waiting) >= 1  # each cut trial is queued again for `resume`
    assert _events(run_dir)[-1]["event"] == "run_interrupted"
    if pack > 1:  # a run cut mid-pack resumes (in packs, as it was made) to exactly its count
        assert main(["resume", str(run_dir), "--quiet"]) == 0
        done = [t for t in run_study(run_dir).trials
                if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
        assert len(done) == KILLED_RUN_TRIALS and len({t.user_attrs["pattern"] for t in done}) == KILLED_RUN_TRIALS
        assert {e["pack"] for e in _events(run_dir) if e["event"] == "trial_started"} <= {1, 2}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "kill", "hang-up"])
def test_a_stop_signal_asks_the_loop_to_stop_and_nohup_keeps_its_run(sig):
    """Each stop signal sets the flag the loops poll (SIGHUP's default would end the process at once,
    cutting the packs in flight); a SIGHUP that `nohup` ignores stays ignored, and each signal's
    handler is given back afterwards."""
    from sola_search.search.runner import stop_signals

    before = signal.signal(sig, signal.SIG_DFL)
    try:
        with stop_signals() as state:
            os.kill(os.getpid(), sig)
            time.sleep(0.01)  # the handler runs in the main thread between bytecodes
            assert state["stop"]
        assert signal.getsignal(sig) == signal.SIG_DFL
        if sig == signal.SIGHUP:
            signal.signal(sig, signal.SIG_IGN)  # as under nohup
            with stop_signals() as state:
                os.kill(os.getpid(), sig)
                time.sleep(0.01)
                assert not state["stop"]
            assert signal.getsignal(sig) == signal.SIG_IGN
    finally:
        signal.signal(sig, before)


def test_a_pack_that_fails_as_a_whole_is_retried_pattern_by_pattern(monkeypatch):
    """One pattern that cannot train (here: out of memory in any pack it is in) must not fail the
    patterns packed with it."""
    import sola_search.proxies as proxies
    from sola_search.proxies import ProxyConfig, ProxyResult
    from sola_search.search.cluster import ProxyWorker

    calls = []

    def fake(patterns, cfg, **kw):
        calls.append(list(patterns))
        bad = "SS-SS-SSSS-SS" in patterns
        return [ProxyResult(status="oom" if bad else "ok", reason="CUDA out of memory" if bad else "",
                            val_top1=None if bad else 0.5, pattern=p, packed=len(patterns)) for p in patterns]

    monkeypatch.setattr(proxies, "train_proxies", fake)
    pats = ["LL-LL-LLLL-LL", "SS-SS-SSSS-SS", "LS-LS-LSLS-LS"]
    out = ProxyWorker(1).train(pats, ProxyConfig(variant="micro").to_dict())
    assert calls == [pats, *[[p] for p in pats]]
    assert [[r["status"] for r in runs] for runs in out] == [["ok"], ["oom"], ["ok"]]
    assert [runs[0]["pattern"] for runs in out] == pats


def test_a_supernet_worker_that_cannot_see_the_run_directory_trains_nothing(tmp_path, npz_data):
    """On a cluster the supernet worker may sit on another node than the driver: it must not train a supernet
    into a directory of that node's own (the run would never see it, and a resume would train again)."""
    from sola_search.proxies import ProxyConfig
    from sola_search.search.cluster import ProxyWorker

    elsewhere = tmp_path / "runs" / "r"  # what the driver's path is on a node that lacks it: no run.json
    cfg = ProxyConfig(variant="micro", data=npz_data, device="cpu").to_dict()
    with pytest.raises(SolaError, match="is not on .*storage every GPU node sees"):
        ProxyWorker(1).warm(cfg, supernet=dict(directory=str(elsewhere), budget="4softmax", resolution=224))
    assert not tmp_path.joinpath("runs").exists()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SOLA_TEST_POSTGRES"),
                    reason="set SOLA_TEST_POSTGRES=postgresql://... (.ci/run starts a server)")
def test_postgresql_storage(tmp_path, npz_data, capsys):
    """The study in PostgreSQL, as on a cluster: the search, load_study and pareto --storage."""
    url = os.environ["SOLA_TEST_POSTGRES"]
    name = f"pg-{os.getpid()}-{int(time.time())}"
    summary = run_search(_config(tmp_path, npz_data, trials=3, storage=url, name=name), quiet=True)
    assert summary.completed == 3
    study = optuna.load_study(study_name=name, storage=url)
    assert study.metric_names == ["val_top1", "gmacs"]
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3
    assert not (tmp_path / "runs" / name / "study.db").exists()
    capsys.readouterr()
    assert main(["pareto", "--storage", url, "--study", name, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {"trial", "pattern", "val_top1", "macs", "params"} <= set(rows[0])
