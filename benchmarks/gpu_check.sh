#!/usr/bin/env bash
# The GPU check on a bare GPU machine: install the wheels it lacks (prepared here by
# `make gpu-wheels` into .whl/), then run benchmarks/gpu_check.py; figures go to
# $OUT/gpu_check.json (or ./gpu_check.json). Extra arguments go to the script.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/synthwatch-wheels .whl/*.whl
  export PYTHONPATH="/tmp/synthwatch-wheels${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec python3 benchmarks/gpu_check.py --out "${OUT:-.}/gpu_check.json" "$@"
