#!/usr/bin/env bash
# benchmarks/backbones.py on a bare GPU machine: install the wheels it lacks (`make gpu-wheels`
# puts duckdb, faiss-cpu and synthwatch's own wheel in .whl/), then measure the medium corpus.
# Figures go to $OUT/backbones-medium.json. Extra arguments go to the script.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/synthwatch-wheels .whl/*.whl
export PYTHONPATH="/tmp/synthwatch-wheels${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec python3 benchmarks/backbones.py --size medium --out "${OUT:-.}/backbones-medium.json" "$@"
