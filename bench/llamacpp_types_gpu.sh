#!/usr/bin/env bash
# One-sequence decode and prefill speed of every common GGUF type on one GPU: how fast each
# type's kernel reads its weights on this card (the planner calibrates llama.cpp per type and
# GPU model). Two device calls back to back (the machine keeps /tmp between them):
#   here:  the trimmed llama.cpp tree of the pinned llama-cpp-python sdist and the default
#          model's tokenizer GGUF in .devcarry/gd/{llama.cpp.tar.xz,tokenizer.gguf}
#          (bench/llamacpp_depth.sh says how they are made)
#   there: bash bench/llamacpp_types_gpu.sh build   (carry .devcarry/gd; CUDA build of
#          llama-bench and llama-quantize, 8B- and 1B-shape F16 GGUFs of random weights)
#          bash bench/llamacpp_types_gpu.sh bench   (quantize to each type, llama-bench
#          pp512 and tg128 with flash attention off and on)
#   here:  python bench/llamacpp_types_gpu.py --device DIR ...  (bench/results/llamacpp_types_gpu
#          .{json,md} and catalog/seed/profiles_llamacpp_types_gpu.yaml)
# Random weights: speed only (a decode step reads the same bytes whatever their values).
set -uo pipefail
. "$(dirname "$0")/device_env.sh"
STEP=${1:-build}
TYPES_8B="Q8_0 Q6_K Q5_K_M Q4_K_M Q3_K_M Q2_K"
TYPES_1B="Q8_0 Q4_K_M"
if [ "$STEP" = build ]; then
    build_tools_and_models "8b 1b" llama-bench llama-quantize
else
    start=$(date +%s)
    mkdir -p "$W/r" "$W/q"
    for q in $TYPES_8B; do
        [ -s "$MODELS/8b-$q.gguf" ] || "$BIN/llama-quantize" "$MODELS/8b-F16.gguf" \
            "$MODELS/8b-$q.gguf" "$q" 4 >"$W/q/8b-$q.log" 2>&1 &
    done
    for q in $TYPES_1B; do
        [ -s "$MODELS/1b-$q.gguf" ] || "$BIN/llama-quantize" "$MODELS/1b-F16.gguf" \
            "$MODELS/1b-$q.gguf" "$q" 2 >"$W/q/1b-$q.log" 2>&1 &
    done
    wait
    tail -n 4 "$W"/q/*.log >"$OUT/quantize.txt" 2>/dev/null
    echo "quantize_seconds $(($(date +%s) - start))" | tee "$OUT/bench.txt"
    ls -la "$MODELS" | tee "$OUT/models.txt"
    for f in 8b-F16 $(for q in $TYPES_8B; do echo "8b-$q"; done) 1b-F16 \
        $(for q in $TYPES_1B; do echo "1b-$q"; done); do
        "$BIN/llama-bench" -m "$MODELS/$f.gguf" -ngl 99 -p 512 -n 128 -r 5 -fa off,on \
            -o jsonl >"$W/r/$f.jsonl" 2>"$W/r/$f.err"
        echo "$f rc $? at $(($(date +%s) - start)) s" | tee -a "$OUT/bench.txt"
    done
    # Few files back: the device returns only so many.
    cat "$W"/r/*.jsonl >"$OUT/types.jsonl"
    tail -n 3 "$W"/r/*.err >"$OUT/types-err.txt"
    uptime >>"$OUT/machine.txt"
fi
