"""Running the `sola-search` command in-process, as the CLI tests do, and opening what a run stored."""

from __future__ import annotations

from pathlib import Path

import optuna

from sola_search.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    """`sola-search ARGV` in this process: its exit status (argparse's errors included), stdout, stderr."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:  # argparse errors
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def run_study(run_dir: Path) -> optuna.Study:
    """The Optuna study a run stored in its default SQLite file (study name = run name)."""
    return optuna.load_study(study_name=run_dir.name, storage=f"sqlite:///{run_dir / 'study.db'}")
