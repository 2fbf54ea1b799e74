#!/usr/bin/env bash
# The device side of bench/gpu_apply.py, four calls back to back (the machine keeps /tmp only
# while it stays warm between them):
#   bash bench/gpu_apply.sh install   # carry .devcarry/ga: Ray (stripped), quantplan's wheels
#   bash bench/gpu_apply.sh stage     # carry .devcarry/gb: the sdist's 1st half, toolchain wheels
#   bash bench/gpu_apply.sh build     # carry .devcarry/gc: CUDA llama-server, llama-cpp toolchain
#   bash bench/gpu_apply.sh apply     # carry nothing: ray start, plan, apply, status, destroy
set -euo pipefail
. "$(dirname "$0")/device_env.sh"
python3 scripts/package_view.py "$W/view" >/dev/null
export PYTHONPATH=$W/site:$W/view
[ "$1" = build ] && export PYTHONPATH=$W/build-tools:$PYTHONPATH
{ python3 --version; which nvcc || true; nproc; lscpu | grep -i 'model name'; } >"$OUT/env-$1.txt" 2>&1
python3 bench/gpu_apply.py "$1" 2>&1 | tee "$OUT/$1.log"
