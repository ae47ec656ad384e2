"""Running the `sola-search` command in-process, as the CLI tests do."""

from __future__ import annotations

from sola_search.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    """`sola-search ARGV` in this process: its exit status (argparse's errors included), stdout, stderr."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:  # argparse errors
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err
