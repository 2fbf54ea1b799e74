#!/usr/bin/env bash
# Decode speed against context depth on one GPU, with llama.cpp's flash attention off and on:
# how much more than its bytes reading the KV cache costs a decode step (the planner reads it at
# the weights' bandwidth). Two device calls back to back (the machine keeps /tmp between them):
#   here:  the trimmed llama.cpp tree of the pinned llama-cpp-python sdist and the default
#          model's tokenizer GGUF in .devcarry/gd/{llama.cpp.tar.xz,tokenizer.gguf}
#   there: bash bench/llamacpp_depth.sh build   (carry .devcarry/gd; ~6 min: CUDA build of
#          llama-bench and llama-quantize, an 8B-shape F16 GGUF of random weights, Q8_0, Q4_K_M)
#          bash bench/llamacpp_depth.sh bench   (llama-bench tg128 at depths 0-32768, -fa off/on)
#   here:  python bench/llamacpp_depth.py --device DIR   (bench/results/llamacpp_depth.{json,md})
# Random weights: speed only (a decode step reads the same bytes whatever their values).
set -uo pipefail
. "$(dirname "$0")/device_env.sh"
STEP=${1:-build}
if [ "$STEP" = build ]; then
    build_tools_and_models 8b llama-bench llama-quantize
    for q in Q8_0 Q4_K_M; do
        "$BIN/llama-quantize" "$MODELS/8b-F16.gguf" "$MODELS/8b-$q.gguf" "$q" \
            >"$OUT/quantize-$q.log" 2>&1 &
    done
    wait
    ls -la "$MODELS" | tee "$OUT/models.txt"
else
    for q in F16 Q8_0 Q4_K_M; do
        "$BIN/llama-bench" -m "$MODELS/8b-$q.gguf" -ngl 99 -p 0 -n 128 -r 3 \
            -d 0,2048,8192,32768 -fa off,on -o jsonl >"$OUT/depth-$q.jsonl" 2>"$OUT/depth-$q.err"
        echo "$q rc $?" >>"$OUT/bench.txt"
    done
    uptime >>"$OUT/machine.txt"
fi
