#!/usr/bin/env bash
# Install relgraph and what it needs. Usage: bash scripts/install.sh [dev|docs|dev,docs]
# CPU PyTorch 2.13.0 is installed only where no torch is importable: an existing torch (e.g. Kaggle's CUDA build) is kept,
# and a bare `torch` requirement never pulls gigabytes of CUDA wheels onto a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=${1:-}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "relgraph install: no torch found; installing CPU torch 2.13.0"
  "$PY" -m pip install --quiet ${RELGRAPH_TORCH_INDEX:+--index-url "$RELGRAPH_TORCH_INDEX"} "torch==2.13.0"
else
  echo "relgraph install: keeping torch $("$PY" -c 'import torch; print(torch.__version__)')"
fi
"$PY" -m pip install --quiet -e ".${extras:+[$extras]}"
