#!/usr/bin/env bash
# Whether llama.cpp's GPU decode pays a fixed cost each time a generation starts, or only a
# steady cost a step: llama-bench's tg and llama-batched-bench at one sequence measured the
# same files on one H100 about 5-17 % apart (bench/results/llamacpp_types_gpu vs
# llamacpp_cold_start). Here both tools time 16, 64 and 256 generated tokens of each file, and
# batched-bench does so after a 1-token and after a 128-token prompt, so a line through the
# three lengths splits a per-generation cost (its intercept) from the per-step one (its slope).
# Two device calls back to back (the machine keeps /tmp between them):
#   here:  the trimmed llama.cpp tree and tokenizer GGUF in .devcarry/gd (see llamacpp_depth.sh)
#   there: bash bench/llamacpp_decode_start.sh build   (carry .devcarry/gd: CUDA build of
#          llama-bench, llama-batched-bench and llama-quantize; 8B- and 1B-shape GGUFs of
#          random weights, F16 and their Q8_0 and Q4_K_M)
#          bash bench/llamacpp_decode_start.sh bench
#          bash bench/llamacpp_decode_start.sh build-streams (on a fresh machine; or streams
#          after build): one sequence in contexts made for 64 sequences and for one
#   here:  python bench/llamacpp_decode_start.py --device DIR
# Random weights: speed only. Flash attention as each tool sets it by default (auto: on).
set -uo pipefail
. "$(dirname "$0")/device_env.sh"
STEP=${1:-build}
FILES="1b-F16 1b-Q4_K_M 8b-F16 8b-Q8_0 8b-Q4_K_M"
if [ "$STEP" = build ]; then
    build_tools_and_models "8b 1b" llama-bench llama-batched-bench llama-quantize
    start=$(date +%s)
    for q in 8b-Q8_0 8b-Q4_K_M 1b-Q4_K_M; do
        "$BIN/llama-quantize" "$MODELS/${q%%-*}-F16.gguf" "$MODELS/$q.gguf" "${q#*-}" 5 \
            >"$W/quantize-$q.log" 2>&1 &
    done
    wait
    echo "quantize_seconds $(($(date +%s) - start))" | tee "$OUT/quantize.txt"
    ls -la "$MODELS" | tee "$OUT/models.txt"
elif [ "$STEP" = bench ]; then
    start=$(date +%s)
    : >"$OUT/bench.jsonl"
    : >"$OUT/batched.jsonl"
    for f in $FILES; do
        "$BIN/llama-bench" -m "$MODELS/$f.gguf" -ngl 99 -p 0 -n 16,64,256 -r 5 -o jsonl \
            2>"$W/bench-$f.err" | sed "s/^{/{\"file\": \"$f\", /" >>"$OUT/bench.jsonl"
        # Each (prompt, generated) pair twice at one sequence: the first of a new shape may
        # pay a start-up cost (bench/results/llamacpp_cold_start); the second is read.
        "$BIN/llama-batched-bench" -m "$MODELS/$f.gguf" -c 4096 -b 2048 -ub 512 -ngl 99 \
            -npp 1,128 -ntg 16,64,256 -npl 1,1 --output-format jsonl 2>"$W/batched-$f.err" |
            grep '^{' | sed "s/^{/{\"file\": \"$f\", \"graphs\": true, /" >>"$OUT/batched.jsonl"
        echo "$f at $(($(date +%s) - start)) s" | tee -a "$OUT/bench.txt"
    done
    # The same sweep with CUDA graphs off: what a step costs launched kernel by kernel, the
    # price of a step that runs before a graph is captured.
    for f in 1b-Q4_K_M 8b-Q4_K_M; do
        GGML_CUDA_DISABLE_GRAPHS=1 "$BIN/llama-batched-bench" -m "$MODELS/$f.gguf" -c 4096 \
            -b 2048 -ub 512 -ngl 99 -npp 128 -ntg 16,64,256 -npl 1,1 --output-format jsonl \
            2>"$W/batched-nograph-$f.err" | grep '^{' |
            sed "s/^{/{\"file\": \"$f\", \"graphs\": false, /" >>"$OUT/batched.jsonl"
        echo "$f without graphs at $(($(date +%s) - start)) s" | tee -a "$OUT/bench.txt"
    done
    tail -n 3 "$W"/*.err >"$OUT/bench-err.txt"
    uptime >>"$OUT/machine.txt"
fi
if [ "$STEP" = streams ] || [ "$STEP" = build-streams ]; then
    # One sequence in a context made for 64 (-npl 1,1,64: 64 KV streams, as llama-server
    # --parallel 64 makes them unless --kv-unified), in one made for 64 with a unified KV cache,
    # and in one made for one; the first with CUDA graphs off as well. The llama-cpp-python
    # build's llama-batched-bench logs whether graphs were captured with GGML_LOG_DEBUG only,
    # so the rates tell.
    [ "$STEP" = build-streams ] && {
        build_tools_and_models "8b 1b" llama-batched-bench llama-quantize
        for q in 8b-Q4_K_M 1b-Q4_K_M; do
            "$BIN/llama-quantize" "$MODELS/${q%%-*}-F16.gguf" "$MODELS/$q.gguf" "${q#*-}" 8 \
                >"$W/quantize-$q.log" 2>&1 &
        done
        wait
    }
    start=$(date +%s)
    : >"$OUT/streams.jsonl"
    for f in 1b-F16 1b-Q4_K_M 8b-F16 8b-Q4_K_M; do
        for setting in "streams64 -npl 1,1,64" "unified64 -npl 1,1,64 -kvu" "streams1 -npl 1,1" \
            "streams64-nographs -npl 1,1,64"; do
            set -- $setting
            name=$1
            shift
            env=()
            [ "$name" = streams64-nographs ] && env=(GGML_CUDA_DISABLE_GRAPHS=1)
            env "${env[@]}" "$BIN/llama-batched-bench" -m "$MODELS/$f.gguf" -c 16384 -b 2048 \
                -ub 512 -ngl 99 -npp 128 -ntg 64,256 "$@" --output-format jsonl \
                2>"$W/streams-$f-$name.err" | grep '^{' |
                sed "s/^{/{\"file\": \"$f\", \"setting\": \"$name\", /" >>"$OUT/streams.jsonl"
            echo "$f $name at $(($(date +%s) - start)) s" | tee -a "$OUT/bench.txt"
        done
    done
    uptime >>"$OUT/machine.txt"
fi
