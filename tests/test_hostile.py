"""Hostile input (issue 19): files that are not regular, symlinks, huge numbers, long names, deeply
nested JSON, read-only and full file systems, a port where something other than Ray answers. Each
is refused in one line (exit 2 for bad input, 1 for a state of the machine the user must fix) and
nothing stored is replaced."""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_results_support import make_run

from sola_search.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "runs"
    make_run(root, "r", n=6, events=[{"event": "run_started"}])
    make_run(root, "other", n=6, events=[{"event": "run_started"}])
    return root


def _digest(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _fails(capsys, argv, message, code=2):
    assert main([str(a) for a in argv]) == code
    out, err = capsys.readouterr()
    assert not out and err.count("\n") == 1 and err.startswith("sola-search: error: ") and message in err, err
    return err


# --- export --out -------------------------------------------------------------------------------
def test_export_never_replaces_a_fifo(runs, tmp_path, capsys):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    _fails(capsys, ["export", runs / "r", "--pick", "trial:0", "--out", fifo], "not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_export_never_replaces_a_device_node(runs, tmp_path, capsys):
    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a second /dev/null
    _fails(capsys, ["export", runs / "r", "--pick", "trial:0", "--out", dev], "not a regular file")
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


def test_export_guard_sees_through_symlinks(runs, tmp_path, capsys):
    """`plink` -> another run's patterns/: the guard on a run's own pattern files used to look at the
    path as typed and let the export overwrite that run's patterns/0.json."""
    other = runs / "other"
    assert main(["export", str(other), "--pick", "trial:0", "--out", str(other / "patterns" / "0.json")]) == 2
    # Make patterns/0.json a valid pattern file (it is the run's own), as the search writes it.
    assert main(["export", str(other), "--pick", "trial:0", "--out", str(tmp_path / "k.json")]) == 0
    (tmp_path / "k.json").rename(other / "patterns" / "0.json")
    capsys.readouterr()
    (tmp_path / "plink").symlink_to(other / "patterns")
    (tmp_path / "flink.json").symlink_to(other / "patterns" / "0.json")
    before = _digest(other)
    _fails(capsys, ["export", runs / "r", "--pick", "trial:1", "--out", tmp_path / "plink" / "0.json"],
           "keeps its trials' pattern files")
    _fails(capsys, ["export", runs / "r", "--pick", "trial:1", "--out", tmp_path / "plink" / "new.json"],
           "keeps its trials' pattern files")
    _fails(capsys, ["export", runs / "r", "--pick", "trial:1", "--out", tmp_path / "flink.json"],
           "keeps its trials' pattern files")
    _fails(capsys, ["export", runs / "r", "--pick", "trial:1", "--out", tmp_path / "plink"],
           "keeps its trials' pattern files")
    assert _digest(other) == before


def test_export_out_with_a_trailing_slash_is_a_directory(runs, tmp_path, capsys):
    out = f"{tmp_path / 'nodir' / 'sub'}/"
    assert main(["export", str(runs / "r"), "--pick", "trial:2", "--out", out]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'nodir' / 'sub' / 'r-trial2.json'}: trial 2")
    assert (tmp_path / "nodir" / "sub").is_dir() and (tmp_path / "nodir" / "sub" / "r-trial2.json").is_file()


def test_a_refused_export_creates_nothing(runs, tmp_path, capsys):
    _fails(capsys, ["export", runs / "r", "--pick", "trial:999", "--out", f"{tmp_path / 'a' / 'b'}/"], "no trial 999")
    _fails(capsys, ["export", runs / "r", "--pick", "nearest", "--out", tmp_path / "c" / "d.json"], "not understood")
    assert list(tmp_path.iterdir()) == []


# --- huge numbers, long names -------------------------------------------------------------------
@pytest.mark.parametrize("budget", ["9" * 400 + "gmacs", "9" * 400 + "gflops", "9" * 5000 + "softmax",
                                    "1" + "0" * 5000 + "mparams", "0." + "0" * 5000 + "1gmacs"])
def test_a_budget_with_a_huge_number_is_one_line(capsys, tmp_path, budget):
    err = _fails(capsys, ["space", "--budget", budget, "--variant", "micro"], "too long a number")
    assert len(err) < 300  # the message names the term, not all its digits
    _fails(capsys, ["run", "--budget", budget, "--variant", "micro", "--runs-dir", tmp_path / "runs"],
           "too long a number")
    assert not (tmp_path / "runs").exists()


def test_a_long_name_is_refused_up_front_and_nothing_is_made(capsys, tmp_path):
    """A 300-character --name used to end in OSError (File name too long), after --runs-dir was made."""
    runs = tmp_path / "nope" / "deeper"
    _fails(capsys, ["run", "--budget", "4softmax", "--variant", "micro", "--runs-dir", runs, "--name", "a" * 300],
           "at most 100 characters")
    _fails(capsys, ["run", "--budget", "4softmax", "--variant", "micro", "--runs-dir", runs, "--name", "bad name"],
           "expected letters, digits")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "runs").mkdir()  # an existing --runs-dir: looking for run.json itself raised
    _fails(capsys, ["run", "--budget", "4softmax", "--variant", "micro", "--runs-dir", tmp_path / "runs",
                    "--name", "a" * 300], "at most 100 characters")
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_run_that_fails_before_storing_its_configuration_leaves_no_runs_dir(capsys, tmp_path, monkeypatch):
    """Ray failing to start (here: raising at once) after the run directory was made: the run
    directory went, but the --runs-dir made for it stayed."""
    import sola_search.search.runner as runner
    from sola_search.errors import SolaError

    def no_ray(plan, *args):
        assert plan.run.path.is_dir()
        raise SolaError("Ray could not start (simulated)")

    monkeypatch.setattr(runner, "_run", no_ray)
    (tmp_path / "keep").mkdir()
    _fails(capsys, ["run", "--budget", "4softmax", "--variant", "micro", "--runs-dir", tmp_path / "keep" / "a" / "b",
                    "--name", "x"], "Ray could not start")
    assert [p.name for p in tmp_path.iterdir()] == ["keep"] and not any((tmp_path / "keep").iterdir())


# --- hostile pattern files ----------------------------------------------------------------------
def _hostile_files(tmp_path: Path) -> dict[str, Path]:
    files = {"deep": "{\"pattern\": " + "[" * 100_000 + "]" * 100_000 + "}",
             # shallow enough for the JSON parser, deep enough to break what walks it afterwards
             "deep990": '{"pattern": "LL-LL-LLLL-LL", "layer_types": ' + "[" * 990 + "]" * 990 + "}",
             "digits": '{"pattern": "LL-LL-LLLL-LL", "resolution": ' + "9" * 5000 + "}"}
    for name, text in files.items():
        (tmp_path / f"{name}.json").write_text(text)
    return {name: tmp_path / f"{name}.json" for name in files}


@pytest.mark.parametrize("kind, message", [("deep", "nested too deeply"), ("deep990", "nested too deeply"),
                                           ("digits", "a number of more than 4300 digits")])
def test_load_pattern_file_raises_only_sola_error(tmp_path, kind, message):
    from sola_search.errors import SolaError
    from sola_search.results.patterns import load_pattern_file

    with pytest.raises(SolaError, match=message):
        load_pattern_file(_hostile_files(tmp_path)[kind])


@pytest.mark.parametrize("kind", ["deep", "deep990", "digits"])
def test_hostile_pattern_files_are_one_line(runs, tmp_path, capsys, kind):
    path = _hostile_files(tmp_path)[kind]
    before = path.read_bytes()
    _fails(capsys, ["show", path], f"pattern file {path}")
    _fails(capsys, ["proxy", path, "--steps", "1"], f"pattern file {path}")
    _fails(capsys, ["export", runs / "r", "--pick", "trial:0", "--out", path], "not a pattern file; not overwritten")
    assert path.read_bytes() == before


def _not_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Paths a user may hand over that are not pattern files to read: each with what the error says."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    (tmp_path / "dir.json").mkdir()
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:  # sparse: no disk used
        f.truncate((64 << 20) + 1)
    return {"fifo": (fifo, "not a regular file"), "device": (Path("/dev/zero"), "not a regular file"),
            "directory": (tmp_path / "dir.json", "a directory"),
            "huge": (huge, "67,108,865 bytes, more than the 64 MiB")}


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "huge"])
def test_a_fifo_a_device_a_directory_or_a_huge_file_is_refused_not_read(tmp_path, capsys, kind):
    """`show FIFO` blocked for ever and `show /dev/zero` read until the memory ran out."""
    path, message = _not_files(tmp_path)[kind]
    _fails(capsys, ["show", path], f"pattern file {path}: {message}")
    _fails(capsys, ["proxy", path, "--steps", "1"], f"pattern file {path}: {message}")
    _fails(capsys, ["run", "--budget", "4softmax", "--variant", "micro", "--calibration", path, "--runs-dir",
                    tmp_path / "runs", "--name", "x"], message)
    _fails(capsys, ["run", "--budget", "4softmax", "--variant", "micro", "--latency", path, "--runs-dir",
                    tmp_path / "runs", "--name", "x"], message)
    assert not (tmp_path / "runs").exists()


# --- read-only and full file systems ------------------------------------------------------------
@pytest.fixture
def read_only(tmp_path):
    """A read-only bind mount of a directory (root only): what a run on a read-only disk sees."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()

    def mount() -> Path:
        subprocess.run(["mount", "--bind", str(src), str(ro)], check=True)
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)]).returncode:
            subprocess.run(["umount", str(ro)])
            pytest.skip("cannot remount read-only here")
        return ro

    yield src, mount
    subprocess.run(["umount", "--lazy", str(ro)], capture_output=True)  # SQLite may still hold the study open


def test_resume_on_a_read_only_disk_is_one_line(read_only, capsys):
    """It used to end in OSError (Read-only file system) from the lock file: not bad input, but a
    state the user must fix, so exit 1 naming the lock file and what to do."""
    src, mount = read_only
    make_run(src / "runs", "r", n=4, events=[{"event": "run_started"}])
    before = _digest(src / "runs" / "r")
    ro = mount()
    err = _fails(capsys, ["resume", ro / "runs" / "r"], "Read-only file system", code=1)
    assert f"cannot write its lock file {ro / 'runs' / 'r' / '.driver.lock'}" in err and "make " in err
    assert _digest(src / "runs" / "r") == before


@pytest.mark.slow
def test_a_full_disk_during_a_study_write_is_one_line_and_resume_goes_on(tmp_path, npz_data, capsys, monkeypatch,
                                                                      shared_ray):
    """The second `study.tell` fails as SQLite does on a full disk (Optuna's StorageInternalError):
    ~100 lines of traceback before; now one line saying what happened and the command that goes on."""
    import optuna
    import sqlalchemy
    from optuna.trial import TrialState

    tell, calls = optuna.Study.tell, []

    def full_disk(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            try:
                raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("database or disk is full"))
            except sqlalchemy.exc.OperationalError as e:
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from e
        return tell(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "tell", full_disk)
    run = tmp_path / "runs" / "t"
    argv = ["run", "--budget", "2softmax", "--variant", "micro", "--preset", "quick", "--steps", "2", "--trials", "3",
            "--data", npz_data, "--runs-dir", tmp_path / "runs", "--name", "t", "--quiet"]
    err = _fails(capsys, argv, "run t stopped: its study storage failed (database or disk is full)", code=1)
    assert f"continue with: sola-search resume {run}" in err
    monkeypatch.setattr(optuna.Study, "tell", tell)
    assert main(["resume", str(run), "--quiet"]) == 0
    capsys.readouterr()
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{run / 'study.db'}")
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) >= 3


@pytest.mark.parametrize("kind", ["file", "storage"])
def test_a_full_disk_once_the_run_is_under_way_is_one_line(tmp_path, npz_data, capsys, monkeypatch, kind):
    """An OSError (the event log on a full disk) or Optuna's StorageInternalError once the run is
    under way: one line, exit 1, and the command that goes on. (The run is stubbed after its
    configuration is stored; the slow test above is the real path.)"""
    import errno

    import optuna
    import sqlalchemy

    import sola_search.search.runner as runner

    def full(plan, *args):
        cfg, run = plan.config, plan.run
        run.write_config(cfg.to_dict())
        if kind == "file":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run.events))
        try:
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("database or disk is full"))
        except sqlalchemy.exc.OperationalError as e:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from e

    monkeypatch.setattr(runner, "_run", full)
    run = tmp_path / "runs" / "t"
    what = (f"No space left on device: {run / 'events.jsonl'}" if kind == "file"
            else "its study storage failed (database or disk is full)")
    argv = ["run", "--budget", "2softmax", "--variant", "micro", "--data", npz_data, "--runs-dir", tmp_path / "runs",
            "--name", "t"]
    err = _fails(capsys, argv, f"run t stopped: {what}; what was measured is kept", code=1)
    assert f"continue with: sola-search resume {run}" in err


# --- --address where something other than Ray answers -------------------------------------------
@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
                                   b"SSH-2.0-OpenSSH_9.2\r\n"])
def test_an_address_where_something_else_answers_is_one_line(tmp_path, npz_data, capfd, reply):
    """A TCP server that is not Ray (silent, HTTP/1.1, SSH): `ray.init` tried it for 20-30 s and Ray's
    C++ core printed ~20 lines of warnings before the one-line error."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        conns = []
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conns.append(conn)  # held open, as a silent service does
            if reply:
                conn.sendall(reply)
        for c in conns:
            c.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        code = main(["run", "--budget", "2softmax", "--variant", "micro", "--data", npz_data, "--runs-dir",
                     str(tmp_path / "runs"), "--address", f"127.0.0.1:{port}"])
    finally:
        stop.set()
        thread.join()
        server.close()
    out, err = capfd.readouterr()  # file descriptors: Ray's C++ core writes to fd 2 directly
    assert code == 2 and not out and err.count("\n") == 1, err
    assert f"--address 127.0.0.1:{port}: something answers there, but not a Ray head" in err
    assert not (tmp_path / "runs").exists()


# --- closed standard streams --------------------------------------------------------------------
def _with_closed(streams: str, *argv) -> subprocess.CompletedProcess:
    """The command run as a shell runs `sola-search ARGS >&-` (`streams`: the redirections)."""
    cmd = " ".join(shlex.quote(str(a)) for a in (sys.executable, "-m", "sola_search.cli", *argv))
    return subprocess.run(["bash", "-c", f"exec {cmd} {streams}"], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("streams", [">&-", "2>&-", "<&-"])
def test_a_closed_standard_stream_is_no_traceback(streams):
    """`sola-search show all-linear >&-` ended in a traceback (sys.stdout is None)."""
    p = _with_closed(streams, "show", "all-linear", "--variant", "micro")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert _with_closed(streams, "show", "nosuch", "--variant", "micro").returncode == 2


def test_a_closed_stream_leaves_no_descriptor_for_a_file_to_take(tmp_path):
    """With stderr closed a run failed before starting (exit 1): descriptor 2 went to a file the run
    opened, and what Ray's processes wrote to stderr went there. Each closed stream is /dev/null now,
    before anything is opened."""
    probe = (f"import os, sys; from sola_search.cli import _closed_streams_to_devnull as c; c(); "
             f"f = open({str(tmp_path / 'f')!r}, 'w'); "
             f"print(f.fileno() > 2, *(os.readlink(f'/proc/self/fd/{{fd}}') for fd in (0, 2)), "
             f"sys.stderr is not None, sys.stdin is not None)")
    p = subprocess.run(["bash", "-c", f"exec {shlex.quote(sys.executable)} -c {shlex.quote(probe)} 2>&- <&-"],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["True", "/dev/null", "/dev/null", "True", "True"], (p.stdout, p.stderr)
