"""A run directory: `run.json` (configuration and versions), the SQLite study, the JSON-lines event
log and the pattern files; plus a lock so that two drivers never work on one run at once."""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from sola_search.errors import SolaError, StateError
from sola_search.files import write_atomic


def versions() -> dict[str, str]:
    """Versions of what a result depends on, for run.json and provenance."""
    import optuna
    import ray
    import torch

    from sola_search import __version__

    out = {"sola_search": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "optuna": optuna.__version__, "ray": ray.__version__}
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


STUDY_DB = "study.db"  # a run's own SQLite study, unless run.json names a --storage


def sqlite_url(path: Path) -> str:
    """A SQLite URL of `path`, percent-quoted: a `?`, `#` or `%` in a folder name would otherwise cut or
    decode the path and put the study in another file."""
    return f"sqlite:///{quote(str(path), safe='/')}"


@dataclass(frozen=True)
class Driver:
    """The driver a run's lock names: its pid, and its host (None in a lock an older version wrote,
    which held pid and start time only)."""

    pid: int
    host: str | None = None

    @property
    def remote(self) -> bool:
        """On another host of a cluster (a run directory on a shared file system): its pid means nothing
        here, so whether it is alive cannot be checked from here."""
        return self.host is not None and self.host != socket.gethostname()

    @property
    def unchecked(self) -> str:
        """How reports name a remote driver, instead of calling its run stopped or its trials interrupted."""
        return f"running on {self.host} (pid {self.pid}), not checked from here"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def study_db(self) -> Path:
        return self.path / STUDY_DB

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def patterns(self) -> Path:
        return self.path / "patterns"

    @property
    def default_storage(self) -> str:
        return sqlite_url(self.study_db.resolve())

    def exists(self) -> bool:
        return self.run_json.is_file()

    def create(self) -> None:
        self.patterns.mkdir(parents=True, exist_ok=True)

    def read_config(self) -> dict:
        if self.path.exists() and not self.path.is_dir():  # was: "run.json is unreadable ([Errno 20] ...)"
            raise SolaError(f"no run at {self.path}: not a directory (a run is one, runs/<name>)")
        try:
            return json.loads(self.run_json.read_text())
        except FileNotFoundError:
            raise SolaError(f"no run at {self.path}: run.json is missing") from None
        except (json.JSONDecodeError, OSError) as e:
            raise SolaError(f"run {self.path}: run.json is unreadable ({e})") from None

    def write_config(self, config: dict) -> None:
        write_atomic(self.run_json, json.dumps({**config, "versions": versions()}, indent=2) + "\n")

    def read_events(self) -> list[dict] | None:
        """The event log, one dict per line; a line that does not parse (cut by a crash) is skipped.
        [] when there is no log yet, None when it cannot be read."""
        try:
            lines = self.events.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError):
            return None
        out = []
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                out.append(ev)
        return out

    def log(self, event: str, **fields) -> None:
        """Append one event; each line is a complete JSON object (one write of one line)."""
        line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                           "event": event, **fields})
        with open(self.events, "a") as f:
            f.write(line + "\n")

    # --- one driver at a time -----------------------------------------------------------------
    @property
    def lock(self) -> Path:
        return self.path / ".driver.lock"

    def driver(self) -> Driver | None:
        """The driver that holds the lock (pid, start time, host): a live one on this host, or one on
        another host, taken as live since its pid cannot be checked from here. None when no driver does:
        no lock, an unreadable one, or one a dead driver on this host left (kill -9)."""
        import psutil

        if (held := self._read_lock()) is None:
            return None
        driver, started = held
        if driver.remote:
            return driver
        try:
            proc = psutil.Process(driver.pid)
            alive = abs(proc.create_time() - started) < 1.0 and proc.is_running()
        except psutil.Error:
            return None
        return driver if alive else None

    def _read_lock(self) -> tuple[Driver, float] | None:
        """The lock's driver and its process's start time; None with no lock or an unreadable one."""
        try:
            fields = self.lock.read_text().split()
            if len(fields) not in (2, 3):
                return None
            return Driver(int(float(fields[0])), fields[2] if len(fields) == 3 else None), float(fields[1])
        except (OSError, ValueError):
            return None

    def acquire(self) -> None:
        """Claim the run for this process; a lock left by a dead driver (kill -9) on this host is taken
        over, one from another host never (its driver may be alive: only the user can tell)."""
        import psutil

        if (driver := self.driver()) is not None and driver.remote:
            raise SolaError(f"run {self.name} is held by a driver on {driver.host} (pid {driver.pid}), which "
                            f"cannot be checked from {socket.gethostname()}: wait for it or stop it there; if it is "
                            f"dead, remove {self.lock} by hand and try again; nothing was changed")
        if driver is not None:
            raise SolaError(f"run {self.name} is in progress (driver pid {driver.pid}); wait for it or stop it first")
        me = psutil.Process()
        try:
            write_atomic(self.lock, f"{me.pid} {me.create_time()} {socket.gethostname()}\n")
        except OSError as e:  # a read-only file system, a full disk: nothing else was written yet
            raise StateError(f"run {self.name}: cannot write its lock file {self.lock} ({e.strerror or e}); "
                             f"a run goes on only where it can write: make {self.path} writable (or copy the "
                             "run directory elsewhere) and resume it there") from None

    def release(self) -> None:
        """Remove the lock if it is this process's: the same pid on another host is another driver."""
        held = self._read_lock()
        if held is not None and held[0] == Driver(os.getpid(), socket.gethostname()):
            try:
                self.lock.unlink()
            except OSError:
                pass


def new_run_name(budget: str, variant: str) -> str:
    return f"{variant}-{budget.replace(',', '_').replace('.', 'p')}-{time.strftime('%Y%m%d-%H%M%S')}"
