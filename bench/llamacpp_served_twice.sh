#!/usr/bin/env bash
# Whether llama-server's first pass over a file's levels pays a start-up cost: the served
# protocol of bench/llamacpp_served_gap.sh (8B Q8_0 and Q4_K_M, streamed over HTTP at 1, 4, 16
# and 64 requests, four requests a worker) run twice in a row against one server process, on
# the card the served-gap rows came from. Two device calls back to back (the machine keeps
# /tmp between them):
#   there: bash bench/llamacpp_cold_start.sh served-build   (carry .devcarry/gd: llama-server,
#          llama-quantize, the 8B-shape F16 GGUF of random weights and its Q8_0 and Q4_K_M)
#          bash bench/llamacpp_served_twice.sh
#   here:  python bench/llamacpp_served_twice.py --device DIR
# Random weights: speed only.
set -uo pipefail
. "$(dirname "$0")/device_env.sh"
start=$(date +%s)
: >"$OUT/http.jsonl"
for q in Q8_0 Q4_K_M; do
    # As llamacpp_served_gap.sh started it: 64 slots in a 16,384-token context.
    "$BIN/llama-server" -m "$MODELS/8b-$q.gguf" --host 127.0.0.1 --port 8080 -np 64 -c 16384 \
        -ngl 99 --cont-batching >"$W/server-$q.log" 2>&1 &
    server=$!
    for _ in $(seq 120); do
        curl -sf http://127.0.0.1:8080/health >/dev/null && break
        sleep 1
    done
    for pass in first again; do
        python3 bench/llamacpp_server_gpu_http.py --port 8080 --levels 1,4,16,64 --rounds 4 \
            --label "8b-$q-$pass" >>"$OUT/http.jsonl"
        echo "8b-$q $pass rc $? at $(($(date +%s) - start)) s" | tee -a "$OUT/bench.txt"
    done
    kill $server
    wait $server 2>/dev/null
done
tail -n 5 "$W"/server-*.log >"$OUT/server-tail.txt"
uptime >>"$OUT/machine.txt"
