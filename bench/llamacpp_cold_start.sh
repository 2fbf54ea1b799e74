#!/usr/bin/env bash
# How much of llama-batched-bench's first level is a one-time start-up cost: every file's
# levels run twice at one sequence first (1, 1, 2, 4, ... 64), so the first level is measured
# cold and again warm in the same process. Two device calls back to back (the machine keeps
# /tmp between them):
#   here:  the trimmed llama.cpp tree and the default model's tokenizer GGUF in
#          .devcarry/gd/{llama.cpp.tar.xz,tokenizer.gguf} (bench/llamacpp_depth.sh says how)
#   there: bash bench/llamacpp_cold_start.sh build   (carry .devcarry/gd; CUDA build of
#          llama-batched-bench and llama-quantize, 8B- and 1B-shape F16 GGUFs of random weights)
#          bash bench/llamacpp_cold_start.sh bench   (Q8_0 and Q4_K_M of each, then the sweeps)
#          bash bench/llamacpp_cold_start.sh served-build   (on a fresh machine: llama-server,
#          8B F16 and its Q8_0 and Q4_K_M) then served (llama-server over HTTP, 1-64 requests)
#   here:  python bench/llamacpp_cold_start.py --device DIR --served DIR ...
# Random weights: speed only. The settings are bench/llamacpp_server_gpu.sh's (128 prompt + 64
# generated tokens a sequence, all layers on the GPU, flash attention auto).
set -uo pipefail
. "$(dirname "$0")/device_env.sh"
STEP=${1:-build}
if [ "$STEP" = build ]; then
    build_tools_and_models "8b 1b" llama-batched-bench llama-quantize
elif [ "$STEP" = served-build ]; then
    # llama-server over HTTP, the way plans serve: 8B Q8_0 and Q4_K_M (bench/llamacpp_served_gap
    # measured the same files on an H200).
    build_tools_and_models 8b llama-server llama-quantize
    for q in Q8_0 Q4_K_M; do
        "$BIN/llama-quantize" "$MODELS/8b-F16.gguf" "$MODELS/8b-$q.gguf" "$q" 8 \
            >"$W/quantize-8b-$q.log" 2>&1 &
    done
    wait
    ls -la "$MODELS" | tee "$OUT/models.txt"
elif [ "$STEP" = served ]; then
    : >"$OUT/http.jsonl"
    for q in Q8_0 Q4_K_M; do
        # One slot per sequence of the largest level, each with room for 128 + 64 tokens.
        "$BIN/llama-server" -m "$MODELS/8b-$q.gguf" --host 127.0.0.1 --port 8080 -np 64 \
            -c $((64 * 256)) -ngl 99 --cont-batching >"$W/server-$q.log" 2>&1 &
        server=$!
        for _ in $(seq 120); do
            curl -sf http://127.0.0.1:8080/health >/dev/null && break
            sleep 1
        done
        python3 bench/llamacpp_server_gpu_http.py --port 8080 --levels 1,2,4,8,16,32,64 \
            --rounds 2 --label "8b-$q" >>"$OUT/http.jsonl"
        echo "8b-$q rc $?" | tee -a "$OUT/bench.txt"
        kill $server
        wait $server 2>/dev/null
    done
    tail -n 5 "$W"/server-*.log >"$OUT/server-tail.txt"
    uptime >>"$OUT/machine.txt"
else
    start=$(date +%s)
    for shape in 8b 1b; do
        for q in Q8_0 Q4_K_M; do
            [ -s "$MODELS/$shape-$q.gguf" ] || "$BIN/llama-quantize" "$MODELS/$shape-F16.gguf" \
                "$MODELS/$shape-$q.gguf" "$q" 4 >"$W/quantize-$shape-$q.log" 2>&1 &
        done
    done
    wait
    echo "quantize_seconds $(($(date +%s) - start))" | tee "$OUT/bench.txt"
    ls -la "$MODELS" | tee "$OUT/models.txt"
    : >"$OUT/batched.jsonl"
    for f in 1b-F16 1b-Q8_0 1b-Q4_K_M 8b-F16 8b-Q8_0 8b-Q4_K_M; do
        "$BIN/llama-batched-bench" -m "$MODELS/$f.gguf" -c 16384 -b 2048 -ub 512 -ngl 99 \
            -npp 128 -ntg 64 -npl 1,1,2,4,8,16,32,64 --output-format jsonl 2>"$W/$f.err" |
            grep '^{' | sed "s/^{/{\"model\": \"$f\", /" >>"$OUT/batched.jsonl"
        echo "$f rc $? at $(($(date +%s) - start)) s" | tee -a "$OUT/bench.txt"
    done
    tail -n 3 "$W"/*.err >"$OUT/bench-err.txt"
    uptime >>"$OUT/machine.txt"
fi
