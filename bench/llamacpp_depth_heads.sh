#!/usr/bin/env bash
# What reading the KV cache costs a llama.cpp decode step per byte when more query heads share
# each KV head: the 8B Llama shape (four query heads a KV head) against 8 of Llama-3.1-70B's
# layers (eight), flash attention off and on, on one GPU. Published 2024 runs without flash
# attention slowed with context about twice as much per KV byte for 70B as for 8B on A100s and
# the M2 Ultra, but not on Ada GPUs (bench/results/prediction_accuracy.md, "context cost").
# Two device calls back to back (the machine keeps /tmp between them):
#   here:  the trimmed llama.cpp tree and tokenizer GGUF in .devcarry/gd (see llamacpp_depth.sh)
#   there: bash bench/llamacpp_depth_heads.sh build   (carry .devcarry/gd: CUDA build of
#          llama-bench and llama-quantize; F16 GGUFs of random weights in both shapes)
#          bash bench/llamacpp_depth_heads.sh bench   (Q4_K_M of both; llama-bench tg128 at
#          depths 0, 8192 and 32768, -fa 0 and 1)
#   here:  python bench/llamacpp_depth_heads.py --device DIR
# Random weights: speed only.
set -uo pipefail
. "$(dirname "$0")/device_env.sh"
STEP=${1:-build}
SHAPES="8b 70b-8l"
if [ "$STEP" = build ]; then
    build_tools_and_models "$SHAPES" llama-bench llama-quantize
else
    start=$(date +%s)
    for s in $SHAPES; do
        "$BIN/llama-quantize" "$MODELS/$s-F16.gguf" "$MODELS/$s-Q4_K_M.gguf" Q4_K_M 8 \
            >"$W/quantize-$s.log" 2>&1 &
    done
    wait
    echo "quantize_seconds $(($(date +%s) - start))" | tee "$OUT/bench.txt"
    ls -la "$MODELS" | tee "$OUT/models.txt"
    for s in $SHAPES; do
        for q in F16 Q4_K_M; do
            "$BIN/llama-bench" -m "$MODELS/$s-$q.gguf" -ngl 99 -p 0 -n 128 -r 3 \
                -d 0,8192,32768 -fa 0,1 -o jsonl >"$OUT/depth-$s-$q.jsonl" 2>"$W/depth-$s-$q.err"
            echo "$s-$q rc $? at $(($(date +%s) - start)) s" | tee -a "$OUT/bench.txt"
        done
    done
    tail -n 3 "$W"/*.err >"$OUT/bench-err.txt"
    uptime >>"$OUT/machine.txt"
fi
