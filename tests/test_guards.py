"""What a run keeps safe: the one-driver lock, directories and files it did not make, a lost study,
a hand-edited run.json, and one-line errors for inputs found in a user review. No Ray starts here:
each guard acts before it would."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import psutil
import pytest
from cli_support import run as cli_run
from test_results_support import make_run

from sola_search.cli import main
from sola_search.errors import SolaError
from sola_search.proxies.data import check_data
from sola_search.search import SearchConfig
from sola_search.search.runner import prepare
from sola_search.search.study import absolute_sqlite


@pytest.fixture
def npz(tmp_path) -> str:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((20, 8, 8), np.uint8), y=np.arange(20) % 2)
    return f"npz:{path}"


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path / "runs", "r", n=6, events=[{"event": "run_started"}])


def _digest(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _fails(capsys, argv, message):
    assert main([str(a) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert not out and err.count("\n") == 1 and err.startswith("sola-search: error: ") and message in err, err
    return err


def test_a_live_driver_keeps_the_run(run, capsys):
    """The lock used to be swallowed (SolaError is a ValueError): a second driver took the run over."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        p = psutil.Process(other.pid)
        (run / ".driver.lock").write_text(f"{other.pid} {p.create_time()}\n")
        before = _digest(run)
        _fails(capsys, ["resume", run, "--trials", "9"], f"run r is in progress (driver pid {other.pid})")
        assert _digest(run) == before
    finally:
        other.kill()
        other.wait()


def test_a_dead_drivers_lock_is_taken_over(run, npz):
    (run / ".driver.lock").write_text("999999999 12.0\n")  # no such process
    from sola_search.search.rundir import RunDir

    RunDir(run).acquire()
    assert (run / ".driver.lock").read_text().split()[0] == str(psutil.Process().pid)


def test_a_driver_on_another_host_keeps_the_run(run, capsys):
    """On a cluster (run directory on a shared file system) the lock's pid cannot be checked from
    another host: there it looked dead, and `resume` (or `run --name` of the run) took over a live run."""
    lock = run / ".driver.lock"
    lock.write_text("999999999 12.0 gpu-node-7\n")  # no process here has that pid: it runs on gpu-node-7
    before = _digest(run)
    for argv in (["resume", run, "--trials", "9"],
                 ["run", "--budget", "4softmax", "--variant", "micro", "--runs-dir", run.parent, "--name", "r"]):
        err = _fails(capsys, argv, "run r is held by a driver on gpu-node-7 (pid 999999999), which cannot be "
                                   "checked from ")
        assert f"remove {lock} by hand" in err and "nothing was changed" in err
        assert _digest(run) == before


def test_the_lock_names_its_host_and_release_removes_only_its_own(run):
    from sola_search.search.rundir import RunDir

    rd, me = RunDir(run), psutil.Process()
    rd.acquire()
    assert rd.lock.read_text() == f"{me.pid} {me.create_time()} {socket.gethostname()}\n"
    rd.lock.write_text(f"{me.pid} {me.create_time()} gpu-node-7\n")  # the same pid: another host's driver
    rd.release()
    assert rd.lock.exists()


def test_run_never_takes_or_removes_a_directory_it_did_not_make(tmp_path, npz, capsys):
    mine = tmp_path / "rr" / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("precious")
    _fails(capsys, ["run", "--budget", "4softmax", "--variant", "micro", "--runs-dir", tmp_path / "rr",
                    "--name", "mine", "--data", npz], "exists but is not a sola-search run (no run.json)")
    assert (mine / "notes.txt").read_text() == "precious" and (mine / "sub").is_dir()


def test_a_file_where_a_directory_is_expected_is_named_not_a_directory(tmp_path, npz, capsys):
    """A path that exists but is a file said "no such directory" (runs), "no such run directory" (pareto,
    export, compare), "run.json is unreadable ([Errno 20] ...)" (resume) and "cannot make the run directory
    ...: Not a directory" (run): each now says it is not a directory; one that is missing says so as before."""
    f = tmp_path / "afile"
    f.write_text("mine")
    _fails(capsys, ["runs", "--runs-dir", f], f"runs directory {f}: not a directory")
    _fails(capsys, ["runs", "--runs-dir", tmp_path / "nope"], "no such directory")
    for argv in (["pareto", f], ["export", f], ["compare", f]):
        _fails(capsys, argv, f"run {f}: not a directory")
    _fails(capsys, ["pareto", tmp_path / "nope"], "no such run directory")
    _fails(capsys, ["resume", f], f"no run at {f}: not a directory")
    _fails(capsys, ["resume", tmp_path / "nope"], "run.json is missing")
    new = ["run", "--budget", "4softmax", "--variant", "micro", "--name", "x", "--data", npz, "--runs-dir"]
    _fails(capsys, [*new, f], f"--runs-dir {f}: not a directory")
    _fails(capsys, [*new, f / "sub"], f"--runs-dir {f / 'sub'}: not a directory ({f} is not one)")
    assert f.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["afile", "d.npz"]


def test_resume_refuses_a_run_whose_study_is_lost(run, capsys):
    (run / "study.db").unlink()
    before = _digest(run)
    _fails(capsys, ["resume", run], "its study database")
    assert _digest(run) == before and not (run / "study.db").exists()  # nothing made, nothing overwritten


def test_resume_refuses_a_storage_without_the_study(run, tmp_path, capsys):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(study_name="someone-else", storage=other)
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "storage": other}))
    _fails(capsys, ["resume", run], "no study 'r' in sqlite:///")


def test_resume_of_a_renamed_run_directory_says_so(run, capsys):
    """The study keeps the directory's first name; resuming under another would start a new study."""
    moved = run.rename(run.parent / "renamed")
    before = _digest(moved)
    err = _fails(capsys, ["resume", moved], "no study 'renamed' in sqlite:///")
    assert "the database holds 'r': was the directory renamed? name it back; nothing was resumed" in err
    assert _digest(moved) == before


def test_a_run_directory_whose_path_has_url_characters_keeps_its_study_inside(tmp_path, capsys):
    """`?` would cut the path of a plain `sqlite:///` URL and `%20` would be decoded: the study then
    lands in another file (shared by every such run) and the run looks empty."""
    from sola_search.search.rundir import RunDir
    from sola_search.search.study import sqlite_file

    run = make_run(tmp_path / "q?x ü%20#", "r", n=4)
    assert sqlite_file(RunDir(run).default_storage) == str(run.resolve() / "study.db")
    assert main(["pareto", str(run), "--no-reports"]) == 0
    assert "front:" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["q?x ü%20#"]  # no stray database beside it


def test_resume_confirm_of_a_supernet_run_is_refused_before_run_json_changes(run, capsys):
    """`run --estimator supernet --confirm N` is refused; so is adding it on `resume`, which once stored it
    in run.json, after which no resume of the run could pass that check again."""
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "estimator": "supernet", "supernet_steps": 5}))
    before = _digest(run)
    _fails(capsys, ["resume", run, "--confirm", "2"], "--confirm 2 with --estimator supernet")
    assert _digest(run) == before


def test_a_supernet_run_json_that_stored_confirm_says_how_to_clear_it(run, capsys):
    """A run.json an older sola-search wrote with `confirm` beside `estimator supernet` refuses a plain resume in
    one line that names the file and the way out; `resume --confirm 0` clears it and passes the check."""
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "estimator": "supernet", "supernet_steps": 5, "confirm": 2}))
    before = _digest(run)
    _fails(capsys, ["resume", run, "--trials", "40"], "resume with --confirm 0")
    assert _digest(run) == before
    stored = SearchConfig.from_dict(json.loads((run / "run.json").read_text()))
    again = SearchConfig(budget=stored.budget, name="r", runs_dir=str(run.parent), confirm=0)
    assert prepare(again, stored).config.confirm == 0


def test_resume_of_a_supernet_run_that_lost_its_supernet_json_never_retrains_over_its_weights(run, capsys):
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "estimator": "supernet", "supernet_steps": 5}))
    (run / "supernet.safetensors").write_bytes(b"the weights that scored the run's trials")
    before = _digest(run)
    _fails(capsys, ["resume", run, "--trials", "40"], "supernet.json, which says what trained it, is missing")
    assert _digest(run) == before


def test_a_relative_data_path_is_stored_absolute_and_a_resume_elsewhere_reads_the_same_file(tmp_path, monkeypatch):
    """`run --data npz:d.npz` resumed from another directory read that directory's d.npz: the study mixed two
    datasets without a word. The run now stores the path absolute; naming the same file again by another
    relative path is the same data, another file is refused."""
    from sola_search.proxies.data import absolute_data, same_data

    for d, n in (("a", 20), ("b", 30)):
        (tmp_path / d).mkdir()
        np.savez(tmp_path / d / "d.npz", x=np.zeros((n, 8, 8), np.uint8), y=np.arange(n) % 2)
    monkeypatch.chdir(tmp_path / "a")
    runs = str(tmp_path / "runs")
    first = prepare(SearchConfig(budget="4softmax", variant="micro", data="npz:d.npz", runs_dir=runs, name="r"))
    assert first.config.data == f"npz:{tmp_path / 'a' / 'd.npz'}"
    first.run.path.mkdir(parents=True)
    first.run.write_config(first.config.to_dict())
    monkeypatch.chdir(tmp_path / "b")
    again = prepare(SearchConfig(budget="4softmax", name="r", runs_dir=runs))
    assert again.config.data == f"npz:{tmp_path / 'a' / 'd.npz'}"
    assert prepare(SearchConfig(budget="4softmax", name="r", runs_dir=runs, data="npz:../a/d.npz")).resuming
    with pytest.raises(SolaError, match="was made with data"):
        prepare(SearchConfig(budget="4softmax", name="r", runs_dir=runs, data="npz:d.npz"))
    assert absolute_data("recall:pairs=2-8") == "recall:pairs=2-8" and absolute_data("fashion-mnist") == "fashion-mnist"
    assert same_data("imagefolder:x/../y", f"imagefolder:{tmp_path / 'b' / 'y'}")


def test_a_relative_sqlite_url_is_stored_absolute(tmp_path, npz, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = prepare(SearchConfig(budget="4softmax", variant="micro", data=npz, runs_dir=str(tmp_path / "runs"),
                               storage="sqlite:///rel.db?timeout=5")).config
    assert cfg.storage == f"sqlite:///{tmp_path / 'rel.db'}?timeout=5"
    assert absolute_sqlite("postgresql://u:secret@h/db") == "postgresql://u:secret@h/db"


def test_a_resume_may_name_the_presets_own_value_but_not_another(tmp_path, npz, capsys):
    """run.json stores None for steps, batch size and lr left to the preset: naming the preset's own
    value again (`--lr 2e-3` with quick) is the same run and continues it; another value is refused,
    named as the preset's, and nothing changes. A preset not chosen yet (None) cannot be compared."""
    from sola_search.proxies import PRESETS

    runs = tmp_path / "runs"
    common = dict(budget="4softmax", variant="micro", data=npz, runs_dir=str(runs))
    for name, preset in (("r2", "quick"), ("r3", None)):
        (runs / name).mkdir(parents=True)
        (runs / name / "run.json").write_text(json.dumps(SearchConfig(**common, name=name, preset=preset).to_dict()))
    before = _digest(runs)
    for key in ("steps", "batch_size", "lr"):
        plan = prepare(SearchConfig(**common, name="r2", preset="quick", **{key: getattr(PRESETS["quick"], key)}))
        assert plan.resuming and getattr(plan.config, key) is None  # as stored: the preset's
    argv = ["run", "--budget", "4softmax", "--variant", "micro", "--preset", "quick", "--data", npz, "--runs-dir",
            runs, "--name", "r2"]
    _fails(capsys, [*argv, "--lr", "1e-3"], "run r2 was made with lr the preset's 0.002, not 0.001: resume it")
    _fails(capsys, [*argv, "--batch-size", "64"], "run r2 was made with batch_size the preset's 128, not 64")
    with pytest.raises(SolaError, match="run r3 was made with lr the preset's, not 0.002"):
        prepare(SearchConfig(**common, name="r3", lr=2e-3))
    assert _digest(runs) == before


def test_a_resume_may_spell_its_data_another_way_but_not_name_other_data(tmp_path):
    """`recall` and `recall:pairs = 2-24,grid=8` are one task, `fashion-mnist` and its folder named
    one data set: the run continues, its data as stored; other parameters or folders are other data."""
    from sola_search.proxies.data import same_data

    runs = tmp_path / "runs"
    (runs / "r").mkdir(parents=True)
    common = dict(budget="4softmax", variant="micro", runs_dir=str(runs), name="r", preset="quick")
    (runs / "r" / "run.json").write_text(json.dumps(SearchConfig(**common, data="recall").to_dict()))
    plan = prepare(SearchConfig(**common, data="recall:pairs = 2-24,grid=8"))
    assert plan.resuming and plan.config.data == "recall"
    with pytest.raises(SolaError, match="was made with data 'recall', not 'recall:pairs=2-16'"):
        prepare(SearchConfig(**common, data="recall:pairs=2-16"))
    assert not same_data("recall:pairs=2-", "recall") and not same_data("fashion-mnist", "recall")
    assert same_data("fashion-mnist", "fashion-mnist:/usr/share/datasets/fashion-mnist/")
    assert not same_data("fashion-mnist", f"fashion-mnist:{tmp_path}")


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "expected a JSON object, found list"),
    ('{"variant": "micro"}', "'budget' is None, expected text"),
    ('{"budget": "4softmax", "seed": "x"}', "'seed' is 'x', expected int or null"),
    ('{"budget": "4softmax", "trials": true}', "'trials' is True, expected int or null"),
    ('{"budget": "4softmax", "resolution": 1000000000000}', "--resolution 1000000000000: expected 32 to 4096"),
])
def test_a_hand_edited_run_json_is_one_line(run, capsys, text, message):
    (run / "run.json").write_text(text)
    _fails(capsys, ["resume", run], message)


def test_resume_dot_names_the_directory(run, capsys, monkeypatch):
    monkeypatch.chdir(run)
    (run / "run.json").write_text('{"budget": "4softmax", "seed": "x"}')
    err = _fails(capsys, ["resume", "."], "'seed' is 'x'")
    assert f"{run}/run.json" in err


@pytest.mark.parametrize("target", ["study.db", "run.json", "patterns/0.json"])
def test_export_never_writes_over_a_runs_own_files(run, capsys, target):
    if target == "patterns/0.json":  # a valid pattern file, the run's own: not to be replaced by another trial's
        assert main(["export", str(run), "--pick", "trial:0", "--out", str(run / "k.json")]) == 0
        (run / "k.json").rename(run / target)
        capsys.readouterr()
    before = _digest(run)
    _fails(capsys, ["export", run, "--pick", "knee", "--out", run / target], "--out")
    assert _digest(run) == before


def test_plot_onto_a_directory_is_one_line(run, tmp_path, capsys):
    (tmp_path / "adir.png").mkdir()
    _fails(capsys, ["pareto", run, "--plot", tmp_path / "adir.png", "--no-reports"], "cannot write it")
    _fails(capsys, ["compare", run, run, "--plot", tmp_path / "adir.png"], "cannot write it")


def test_export_from_an_empty_study(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="e", storage=url, directions=["maximize", "minimize"])
    for pick in ("under:5gmacs", "trial:0", "knee"):
        _fails(capsys, ["export", "--storage", url, "--study", "e", "--pick", pick, "--out", tmp_path / "x.json"],
               "the study has no")


@pytest.mark.parametrize("argv, message", [
    (["space", "--budget", "10000000000gmacs", "--variant", "micro"], "too large a limit"),
    (["proxy", "LL-LL-LLLL-LL", "--variant", "micro", "--device", "cuda:x"], "expected auto, cpu, cuda or cuda:N"),
    (["proxy", "LL-LL-LLLL-LL", "--variant", "micro", "--seed", "99999999999999999999999"], "0 to 2**32 - 1"),
])
def test_more_bad_input_is_one_line(capsys, argv, message):
    _fails(capsys, argv, message)


# Python's int() and float() take the digits of every script: full-width ８ and Arabic-Indic ٢ passed as 8 and 2.
_MICRO_RUN = ["run", "--budget", "2softmax", "--variant", "micro"]


@pytest.mark.parametrize("argv, message", [
    (["space", "--variant", "micro", "--budget", "８softmax"], "budget term '８softmax' not understood"),
    (["space", "--variant", "micro", "--budget", "2softmax,１２ms"], "budget term '１２ms' not understood"),
    (["space", "--variant", "micro", "--budget", "٢.٥gmacs"], "not understood"),
    (["show", "last-８", "--variant", "micro"], "pattern"),
    (["show", "all-linear", "--variant", "micro", "--resolution", "２２４"], "expected a whole number of pixels"),
    (["proxy", "all-linear", "--variant", "micro", "--data", "recall:pairs=２-５"], "pairs='２-５', expected N"),
    (["proxy", "all-linear", "--variant", "micro", "--data", "recall:val=٢٠٠٠"], "val='٢٠٠٠', expected a whole number"),
    (["proxy", "all-linear", "--variant", "micro", "--device", "cuda:٣"], "expected auto, cpu, cuda or cuda:N"),
    (["latency", "--variant", "micro", "--device", "cpu", "--batch", "٤"], "'٤': expected a whole number >= 1"),
    (["calibrate", "--data", "recall", "--variant", "micro", "--budget", "2softmax", "--ladder", "１５０,３００"],
     "--ladder '１５０,３００': expected increasing whole numbers"),
    ([*_MICRO_RUN, "--time", "３０m"], "duration '３０m': expected"),
    ([*_MICRO_RUN, "--seed", "８"], "invalid int value: '８'"),
    ([*_MICRO_RUN, "--trials", "١٠"], "invalid int value: '١٠'"),
    ([*_MICRO_RUN, "--gpus-per-trial", "０.５"], "invalid float value: '０.５'"),
    ([*_MICRO_RUN, "--lr", "０.００１"], "expected a learning rate"),
])
def test_numbers_in_other_scripts_digits_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    import sola_search.proxies
    import sola_search.search.cluster
    import sola_search.search.runner
    import sola_search.space.latency

    def work(*a, **k):
        pytest.fail("the number was taken: work started")

    for module, name in ((sola_search.search.runner, "ray_session"), (sola_search.search.cluster, "ray_session"),
                         (sola_search.proxies, "train_proxy"), (sola_search.space.latency, "_measure")):
        monkeypatch.setattr(module, name, work)
    monkeypatch.chdir(tmp_path)  # where latency and calibrate would write
    status, out, err = cli_run(capsys, *argv, *(["--runs-dir", tmp_path / "runs"] if argv[0] == "run" else []))
    assert status == 2 and not out and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["export", "{run}", "--pick", "trial:３", "--out", "{tmp}/x.json"], "expected trial:N with N a trial number"),
    (["export", "{run}", "--pick", "under:２softmax", "--out", "{tmp}/x.json"], "not understood"),
    (["pareto", "{run}", "--ref", "０.５,１", "--no-reports"], "--ref '０.５,１': expected"),
])
def test_numbers_in_other_scripts_digits_are_one_line_on_a_run(run, tmp_path, capsys, argv, message):
    before = _digest(run)
    _fails(capsys, [a.format(run=run, tmp=tmp_path) for a in argv], message)
    assert _digest(run) == before and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("resolution", [100_000_000, 1, -5])
def test_show_checks_a_pattern_files_resolution(tmp_path, capsys, resolution):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"pattern": "LL-LL-LLLL-LL", "resolution": resolution}))
    _fails(capsys, ["show", path], f"'resolution' is {resolution}, expected 32 to 4096 pixels")


@pytest.mark.parametrize("variant", [3, None, ["small"]])
def test_show_refuses_a_pattern_files_variant_that_is_no_name(tmp_path, capsys, variant):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"pattern": "LL-LL-LLLL-LL", "variant": variant}))
    _fails(capsys, ["show", path], f"'variant' is {json.dumps(variant)}, expected a name such as small")


@pytest.mark.parametrize("resolution", ["abc", 1e9, 224.0, True, None])
def test_show_refuses_a_pattern_files_resolution_that_is_no_whole_number(tmp_path, capsys, resolution):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"pattern": "LL-LL-LLLL-LL", "resolution": resolution}))
    _fails(capsys, ["show", path], f"'resolution' is {json.dumps(resolution)}, expected a whole number of pixels")


def test_show_uses_a_pattern_files_resolution(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"pattern": "LL-LL-LLLL-LL", "variant": "micro", "resolution": 160}))
    assert main(["show", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["resolution"] == 160


def test_an_image_folder_without_images_fails_before_the_search(tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "notes.txt").write_text("no image")
    with pytest.raises(SolaError, match="found 0 images"):
        check_data(f"imagefolder:{tmp_path}")
    from PIL import Image

    for i, c in enumerate(("cat", "dog")):
        Image.new("RGB", (4, 4)).save(tmp_path / c / f"{i}.png")
    check_data(f"imagefolder:{tmp_path}")


def test_reading_never_writes_optunas_tables_into_a_database(tmp_path, capsys):
    """pareto/runs used to create Optuna's tables in another program's SQLite file or a 0-byte study.db."""
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE mine (x)")
    before = other.read_bytes()
    _fails(capsys, ["pareto", "--storage", f"sqlite:///{other}"], "holds no Optuna study (no 'studies' table)")
    assert other.read_bytes() == before
    (tmp_path / "runs" / "z").mkdir(parents=True)
    (tmp_path / "runs" / "z" / "study.db").write_bytes(b"")
    assert main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert (tmp_path / "runs" / "z" / "study.db").read_bytes() == b""


def test_a_pattern_file_whose_pattern_is_not_text(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text('{"pattern": 5}')
    _fails(capsys, ["show", path], "'pattern' is 5, expected text such as")
