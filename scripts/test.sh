#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite: the fast tests by default, `-m slow` for the rest; in two
# processes (pytest-xdist), which overlap the tests' waits on Ray workers (`-n 0`: one process; `-n N`: N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check sola_search tests bench
.venv/bin/python -m pytest -q -n 2 --dist worksteal "$@"
