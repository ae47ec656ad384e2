#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite: the fast tests by default, `-m slow` for the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check sola_search tests bench
.venv/bin/python -m pytest -q "$@"
