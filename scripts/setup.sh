#!/usr/bin/env bash
# Set up everything sola-search needs on a fresh Debian/Ubuntu machine: the Fashion-MNIST package
# (the default proxy data) and a virtual environment in .venv with the package and its extras.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null \
    || echo "setup: could not install dataset-fashion-mnist; use --data npz:PATH or imagefolder:PATH" >&2
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# pip compiles each .py file it installs, one after another (where PYTHONDONTWRITEBYTECODE is set,
# as here, nothing is compiled later): compiling them afterwards on every core is faster. A file
# that is not Python 3.11 (torch ships one) fails to compile, as it does in pip, and is left out;
# so are the packages' own test suites (2,626 of ~15,000 files), which nothing here imports.
# (`pip install --upgrade pip` went: the venv's own pip installs this, and it cost ~18 s.)
.venv/bin/python -m pip install -q --no-compile -e ".[timm,test]"
.venv/bin/python -m compileall -qq -j 0 -x '/tests?/' .venv/lib || true
