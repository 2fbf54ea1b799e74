#!/usr/bin/env bash
# The device side of bench/gpu_serve_cli.py, three calls back to back (the machine keeps /tmp
# only while it stays warm between them):
#   bash bench/gpu_serve_cli.sh install   # carry .devcarry/s1: the wheels, the sdist's 1st half
#   bash bench/gpu_serve_cli.sh build     # carry .devcarry/s2: CUDA llama-server, the 8B GGUF
#   bash bench/gpu_serve_cli.sh serve     # carry nothing: serve --gpus / bench / SIGTERM
#   bash bench/gpu_serve_cli.sh sweeps    # carry nothing: the node agent's serve + benchmark
set -euo pipefail
. "$(dirname "$0")/device_env.sh"
if [ "$1" = install ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$W/site" \
        .devcarry/s1/whl-core/*.whl
    cp .devcarry/s1/sdist.part1 "$W/sdist.part1"
    mkdir -p "$W/carry-a" && cp .devcarry/s1/gguf-skeleton.json "$W/carry-a/"
    python3 scripts/package_view.py "$W/view" >/dev/null
    { python3 --version; which nvcc || true; nproc; } | tee "$OUT/env.txt"
    exit 0
fi
export PYTHONPATH=$W/site:$W/view
python3 bench/gpu_serve_cli.py "$1" 2>&1 | tee "$OUT/$1.log"
