#!/usr/bin/env bash
# The README's main command: set up, then run the main job (synthetic shop -> demo sweep -> results).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python3}
export PATH="$(dirname "$(command -v "$PY")"):$PATH"
relgraph demo "$@"
