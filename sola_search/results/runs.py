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

STUDY_DB = "study.db"


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
            raise SolaError(f"run {os.fspath(path)}: no such run directory")
        config = _read_json(d / "run.json")
        name = study or config.get("study_name") or config.get("name") or d.name
        if storage is None:
            if (d / STUDY_DB).is_file():
                storage = f"sqlite:///{(d / STUDY_DB).resolve()}"
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
        raise SolaError(f"runs directory {os.fspath(runs_dir)}: no such directory")
    return sorted(p for p in root.iterdir() if p.is_dir() and ((p / STUDY_DB).is_file() or (p / "run.json").is_file()))


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """The run's event log (`events.jsonl`), skipping lines that do not parse (a line cut by a crash)."""
    events = []
    try:
        lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    for line in lines:
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(ev, dict):
            events.append(ev)
    return events


def driver_alive(run_dir: Path) -> bool:
    """Whether the driver that holds the run's lock (`.driver.lock`: pid and start time) is alive."""
    try:
        import psutil

        pid, started = (float(x) for x in (run_dir / ".driver.lock").read_text().split())
        proc = psutil.Process(int(pid))
        return abs(proc.create_time() - started) < 1.0 and proc.is_running()
    except Exception:  # no lock, unreadable lock, no psutil, or the process is gone
        return False


def run_state(run: Run, running_trials: int) -> str:
    """A run's state in a word: `running` while its driver holds the lock; otherwise from the last
    run-level event in events.jsonl (a start with no end means the driver died: `stopped`), or from
    the study alone (`stored`, or `stopped` when trials were left RUNNING)."""
    if run.dir is not None and driver_alive(run.dir):
        return "running"
    last = None
    for ev in read_events(run.dir) if run.dir is not None else []:
        kind = str(ev.get("event", ev.get("type", ""))).replace(".", "_").replace("-", "_")
        if kind.startswith("run_") or kind in ("resumed", "interrupted"):
            last = (kind, ev)
    if last is not None:
        kind, ev = last
        if kind in ("run_started", "run_resumed", "resumed"):
            return "stopped"  # started, never ended, and no live driver: killed or crashed
        if kind in ("run_ended", "run_finished", "run_completed", "run_done"):
            reason = ev.get("stopped") or ev.get("reason") or ev.get("status")
            return f"finished ({reason})" if reason and reason not in ("ok", "done", "completed") else "finished"
        return kind.removeprefix("run_")
    return "stopped" if running_trials else "stored"
