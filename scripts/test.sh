#!/usr/bin/env bash
# The README's test command: set up, check the nbdev contract, run the notebooks' tests and tests/.
# Usage: bash scripts/test.sh [--slow]   (--slow also runs cells and tests flagged slow)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PATH="$(dirname "$(command -v "$PY")"):$PATH"   # the console scripts installed beside that python
bash scripts/install.sh dev,docs || { echo "0 passed, 1 failed"; exit 1; }
export RELGRAPH_PROGRESS=0 MPLBACKEND=Agg PYTHONUNBUFFERED=1
"$PY" scripts/run_tests.py "$@"
