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
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[timm,test]"
