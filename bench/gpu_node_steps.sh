#!/usr/bin/env bash
# The device side of bench/gpu_node_steps.py, in two calls kept back to back (the machine keeps
# /tmp only while it stays warm between them):
#   bash bench/gpu_node_steps.sh quantize   # carry .devcarry/a: detection, GPTQ, AWQ (~5 min)
#   bash bench/gpu_node_steps.sh serve      # carry .devcarry/b: llama-server CUDA build from the
#                                           # pinned sdist, serve, benchmark, profile (~7 min)
#   bash bench/gpu_node_steps.sh serve8b    # carry nothing: Llama-3.1-8B's shape, F16 (~6 min)
set -euo pipefail
. "$(dirname "$0")/device_env.sh"
if [ "$1" = quantize ]; then
    rm -rf "$W/carry-a" && cp -r .devcarry/a "$W/carry-a"
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$W/site" \
        "$W"/carry-a/whl-core/*.whl
fi
if [ "$1" = serve ]; then cp .devcarry/b/tokenizer.gguf "$W/tokenizer.gguf"; fi
python3 scripts/package_view.py "$W/view" >/dev/null
export PYTHONPATH=$W/site:$W/view
{ python3 --version; which nvcc || true; nproc; } >"$OUT/env-$1.txt" 2>&1
python3 bench/gpu_node_steps.py "$1" 2>&1 | tee "$OUT/$1.log"
