"""What one Optuna trial costs the driver in a SQLite study when a pack of trials is in flight, as a supernet
run asks them (issue 15): `--packs` packs of `--pack` trials, each asked with `--params` categorical parameters
and a read of the study (as the run's sampler reads it), then told. Each SQLite setting in the same process:
the default (rollback journal, synchronous=FULL) and WAL with synchronous=NORMAL.

    python bench/study_overhead.py [--pack 64 --packs 4 --params 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
from proxy_common import OUT, env_info, table, write_json
from sqlalchemy import event


def measure(db: Path, wal: bool, pack: int, packs: int, params: int) -> float:
    """Seconds a trial, ask to tell."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    if wal:
        @event.listens_for(storage.engine, "connect")
        def pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
        storage.engine.dispose()  # connections opened from here on take the pragmas
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(0))
    t0 = time.perf_counter()
    for _ in range(packs):
        trials = []
        for _ in range(pack):
            trial = study.ask()
            for j in range(params):
                trial.suggest_categorical(f"block_{j}", ["linear", "softmax"])
            study.get_trials(deepcopy=False)
            trials.append(trial)
        for trial in trials:
            trial.set_user_attr("pattern", "L" * params)
            study.tell(trial, [0.5, 1.0])
    return (time.perf_counter() - t0) / (pack * packs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=int, default=64)
    ap.add_argument("--packs", type=int, default=4)
    ap.add_argument("--params", type=int, default=20)
    ap.add_argument("--out", default=str(OUT / "study_overhead.json"))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, wal in (("default", False), ("wal+normal", True)):
            s = measure(Path(tmp) / f"{name}.db", wal, args.pack, args.packs, args.params)
            rows.append(dict(sqlite=name, ms_per_trial=round(1e3 * s, 1), trials_per_minute=round(60 / s)))
    table(rows, ["sqlite", "ms_per_trial", "trials_per_minute"])
    write_json(args.out, dict(env=env_info(), args=vars(args), rows=rows))


if __name__ == "__main__":
    main()
