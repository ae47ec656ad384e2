"""Opening what a search stored: a run directory (`runs/<name>/`) or a study by storage URL and name.

The study in its storage is the single source of truth; the run directory adds `run.json` (the
configuration), `events.jsonl` (progress) and `patterns/`. Opening never creates anything: Optuna
would happily create an empty SQLite file for a mistyped path."""

from __future__ import annotations

import json
import os
import sqlite3
import warnings
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from sola_search.errors import SolaError, redact_url
from sola_search.search.rundir import STUDY_DB, Driver, RunDir


@dataclass
class Run:
    """An opened run: its study, its name, and its directory when it has one (None for a bare URL)."""

    study: optuna.Study
    name: str
    dir: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def reports_dir(self) -> Path | None:
        return self.dir / "reports" if self.dir is not None else None

    def driver(self) -> Driver | None:
        """The driver that holds the run (`RunDir.driver`); None when none does, or with no run directory."""
        return None if self.dir is None else RunDir(self.dir).driver()

    def driver_alive(self) -> bool | None:
        """Whether a live driver holds the run now (its lock: pid, start time, host): its RUNNING trials
        are being measured. A driver on another host counts as live, as its pid cannot be checked from
        here. False: none does, so a trial left RUNNING was cut off by a driver that died (kill -9, a
        lost machine) and only `resume` measures it. None: a study opened by URL alone, with no run
        directory to tell by."""
        return None if self.dir is None else self.driver() is not None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SolaError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise SolaError(f"{path}: expected a JSON object")
    return data


def _check_sqlite(storage: str, where: str) -> None:
    """A SQLite file must exist and already hold Optuna's tables: opening it through Optuna would
    otherwise create them, in an empty file or in another program's database."""
    from sola_search.search.study import sqlite_file

    db = sqlite_file(storage)
    if db is None:  # another database, or no URL: _load_study's storage error names it
        return
    if not Path(db).is_file():
        raise SolaError(f"{where}: no study database at {db}")
    try:
        with closing(sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True)) as con:
            has = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'").fetchone()
    except sqlite3.Error as e:
        raise SolaError(f"{where}: {db} is not a readable SQLite database ({e})") from None
    if not has:
        raise SolaError(f"{where}: {db} holds no Optuna study (no 'studies' table); nothing was changed")


def _load_study(storage: str, name: str | None, where: str, guess: bool = False) -> optuna.Study:
    """`optuna.load_study`, with a one-line error for a missing study or an unreachable storage. With
    no name, or a guessed name (the directory's) that the storage lacks while it holds exactly one
    study, that one study is used (a run directory that was renamed still opens)."""
    _check_sqlite(storage, where)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summaries = optuna.get_all_study_summaries(storage=storage, include_best_trial=False)
    except Exception as e:  # any storage error (bad URL, unreachable server, not a database) is one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SolaError(f"{where}: cannot open storage {redact_url(storage)} ({first})") from None
    names = [s.study_name for s in summaries]
    if name is None or (guess and name not in names and len(names) == 1):
        if len(names) != 1:
            raise SolaError(f"{where}: storage holds {len(names)} studies ({', '.join(names) or 'none'}); "
                            "name one with --study")
        name = names[0]
    if name not in names:
        raise SolaError(f"{where}: no study {name!r} in {redact_url(storage)} "
                        f"(found {', '.join(repr(n) for n in names) or 'none'})")
    return optuna.load_study(study_name=name, storage=storage)


def open_run(path: str | os.PathLike | None = None, *, storage: str | None = None,
             study: str | None = None) -> Run:
    """Open a run directory (`runs/<name>`, its study in `study.db` named like the directory, or at
    the `storage`/`study_name` its run.json records), or a study by storage URL and study name."""
    if path is None and storage is None:
        raise SolaError("no run given: expected a run directory (runs/<name>) or --storage URL --study NAME")
    if path is not None:
        d = Path(path)
        if d.is_file() and d.name == STUDY_DB:
            d = d.parent
        if not d.is_dir():
            what = "not a directory (a run is one, runs/<name>)" if d.exists() else "no such run directory"
            raise SolaError(f"run {os.fspath(path)}: {what}")
        config = _read_json(d / "run.json")
        name = study or config.get("study_name") or config.get("name") or d.name
        if storage is None:
            if RunDir(d).study_db.is_file():
                storage = RunDir(d).default_storage
            elif isinstance(config.get("storage"), str):
                storage = config["storage"]
            else:
                raise SolaError(f"run {os.fspath(path)}: no {STUDY_DB} and no storage in run.json; "
                                "is it a sola-search run directory?")
        study_obj = _load_study(storage, str(name), f"run {os.fspath(path)}", guess=study is None)
        return Run(study_obj, d.name, d, config)
    assert storage is not None
    s = _load_study(storage, study, f"storage {redact_url(storage)}")
    return Run(s, s.study_name, None, {})


def find_runs(runs_dir: str | os.PathLike) -> list[Path]:
    """The run directories under `runs_dir` (those holding a study.db or a run.json), by name."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise SolaError(f"runs directory {os.fspath(runs_dir)}: {'not a' if root.exists() else 'no such'} directory")
    return sorted(p for p in root.iterdir() if p.is_dir() and ((p / STUDY_DB).is_file() or (p / "run.json").is_file()))


def run_state(run: Run, running_trials: int) -> str:
    """A run's state in a word: `running` while its driver holds the lock (with where it runs, when
    that is another host, which cannot be checked from here); otherwise from the last run-level event
    the search logged (a start with no end means the driver died: `stopped`), or from the study alone
    (`stored`, or `stopped` when trials were left RUNNING)."""
    run_dir = RunDir(run.dir) if run.dir is not None else None
    if (driver := run.driver()) is not None:
        return driver.unchecked if driver.remote else "running"
    events = (run_dir.read_events() or []) if run_dir is not None else []
    last = next((ev for ev in reversed(events) if ev.get("event") in RUN_EVENTS), None)
    if last is None:
        return "stopped" if running_trials else "stored"
    if last["event"] in ("run_started", "run_resumed"):
        return "stopped"  # started, never ended, and no live driver: killed or crashed
    if last["event"] == "run_finished":
        reason = last.get("stopped")
        return f"finished ({reason})" if reason and reason != "done" else "finished"
    return "interrupted"


# The run-level events the search logs (search/runner.py): what a run's state is read from.
RUN_EVENTS = ("run_started", "run_resumed", "run_finished", "run_interrupted")
