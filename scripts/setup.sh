#!/usr/bin/env bash
# One-time set-up on a fresh Debian 12 machine (run as root): system simulators and a project venv.
# Idempotent: `make` calls it through the .venv/.stamp target only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v iverilog >/dev/null 2>&1; then
    echo "setup: installing Icarus Verilog (Debian iverilog)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq iverilog >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PY"
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch FIRST and pinned: 2.13.0 is the local CPU wheel; any other spec pulls GBs of CUDA.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev]'
touch .venv/.stamp
echo "setup: done"
