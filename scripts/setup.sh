#!/usr/bin/env bash
# Set up robustcompress in ./.venv on a fresh Debian/Ubuntu machine with Python 3.10+.
# torch 2.13.0 (CPU) goes in first, so the project's torch range never pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check --quiet)
"${PIP[@]}" install --upgrade pip
"${PIP[@]}" install torch==2.13.0
"${PIP[@]}" install -e ".[test]"
# Peer attack libraries, for the agreement tests and benchmarks only. --no-deps keeps
# them from pulling torchvision or another torch; their real needs are in the test extra.
"${PIP[@]}" install --no-deps -r requirements-peers.txt
.venv/bin/python -c "import torch, robustcompress; print(f'robustcompress {robustcompress.__version__} ready (torch {torch.__version__})')"
