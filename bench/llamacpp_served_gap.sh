#!/usr/bin/env bash
# Why llama-server over HTTP gives a fraction of llama-batched-bench's rate on one H200, in one
# device call: the same 8B-shape F16 GGUF (random weights, speed only) in the engine loop, then
# through llama-server with the standard-library client under variants that each remove one
# suspect -- per-token streaming, the sampler chain, the client sharing the server's cores --
# with the server's and the client's CPU seconds and the GPU's utilisation beside each.
#   here:  bench/llamacpp_served_gap.sh needs .devcarry/llama/{llama.cpp.tar.xz,tokenizer.gguf}
#          (the vendored tree of the pinned llama-cpp-python sdist, trimmed to the CPU and CUDA
#          backends, and the default model's tokenizer GGUF)
#   there: bash bench/llamacpp_served_gap.sh   (carry .devcarry/llama; about 8 minutes)
#          bash bench/llamacpp_served_gap.sh quantized   (Q8_0 and Q4_K_M of the same file, each
#          through the engine loop and streamed through llama-server at 1/4/16/64; ~9 minutes)
# Results go to $OUT as they come, and into one archive there (served-gap.tgz) after each stage.
set -uo pipefail
export PYTHONUNBUFFERED=1
W=/tmp/w
OUT=${OUT:-/tmp/out}
BIN=$W/b/bin
PORT=8080
MODEL=$W/m/8b-F16.gguf
ROUNDS=${ROUNDS:-4}
MODE=${1:-gap}
mkdir -p "$W/m" "$OUT" .llama-src
tar xJf .devcarry/llama/llama.cpp.tar.xz -C .llama-src
cp .devcarry/llama/tokenizer.gguf .llama-src/tokenizer.gguf
{ nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv; nproc
    grep -m1 'model name' /proc/cpuinfo; uptime; } >"$OUT/machine.txt" 2>&1

python3 bench/llamacpp_server_gpu.py model --shape 8b --out "$MODEL" >"$OUT/model.log" 2>&1 &
model=$!
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
cpu="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
if grep -q avx512f /proc/cpuinfo; then cpu="$cpu -DGGML_AVX512=ON"; fi
start=$(date +%s)
# shellcheck disable=SC2086
cmake -S .llama-src/llama.cpp -B "$W/b" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF $cpu -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$OUT/build.log" 2>&1
cmake --build "$W/b" -j"$(nproc)" --target llama-server llama-batched-bench llama-quantize \
    >>"$OUT/build.log" 2>&1
echo "build_seconds $(($(date +%s) - start))" | tee -a "$OUT/build.log"
wait $model
"$BIN/llama-server" --version >"$OUT/version.txt" 2>&1

# A call brings back only a few files: everything travels as one archive, rewritten per stage.
pack() {
    tar czf /tmp/served-gap.tgz -C "$OUT" --exclude served-gap.tgz . &&
        mv /tmp/served-gap.tgz "$OUT/served-gap.tgz"
}
pack

# 1. The engine loop, no HTTP: 128 prompt + 64 generated tokens per sequence.
"$BIN/llama-batched-bench" -m "$MODEL" -c 16384 -b 2048 -ub 512 -ngl 99 -npp 128 -ntg 64 \
    -npl 1,16,64 --output-format jsonl 2>"$OUT/batched.err" | grep '^{' >"$OUT/batched.jsonl"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
server_pid=""
start_server() {  # $1: label, rest: a prefix such as "taskset -c 0-11"; serves $SERVED
    local label=$1
    shift
    "$@" "$BIN/llama-server" -m "$SERVED" --host 127.0.0.1 --port $PORT -np 64 -c 16384 \
        -ngl 99 --cont-batching --metrics >"$OUT/server-$label.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 120); do
        curl -sf http://127.0.0.1:$PORT/health >/dev/null && return 0
        sleep 0.5
    done
    return 1
}
stop_server() {
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
}
variant() {  # $1: label, $2: levels, $3: JSON merged into each body, rest: client prefix
    local label=$1 levels=$2 extra=$3
    shift 3
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 \
        >"$OUT/gpu-$label.txt" 2>/dev/null &
    local smi=$! before
    before=$(ticks "$server_pid")
    TIMEFORMAT="client_cpu_s %U %S wall_s %R"
    { time "$@" python3 bench/llamacpp_server_gpu_http.py --port $PORT --levels "$levels" \
        --rounds "$ROUNDS" --label "$label" --extra "$extra" >"$OUT/http-$label.jsonl"; } \
        2>"$OUT/client-$label.txt"
    echo "server_cpu_s $(( ($(ticks "$server_pid") - before) / $(getconf CLK_TCK) ))" \
        >>"$OUT/client-$label.txt"
    kill $smi 2>/dev/null
    curl -s http://127.0.0.1:$PORT/metrics | grep -v '^#' >"$OUT/metrics-$label.txt"
}

SERVED=$MODEL
if [ "$MODE" = quantized ]; then
    for q in Q8_0 Q4_K_M; do
        SERVED=$W/m/8b-$q.gguf
        "$BIN/llama-quantize" "$MODEL" "$SERVED" $q "$(nproc)" >"$OUT/quantize-$q.log" 2>&1
        "$BIN/llama-batched-bench" -m "$SERVED" -c 16384 -b 2048 -ub 512 -ngl 99 -npp 128 \
            -ntg 64 -npl 1,4,16,64 --output-format jsonl 2>>"$OUT/batched.err" |
            grep '^{' >"$OUT/batched-$q.jsonl"
        start_server "$q" && {
            variant "stream-$q" 1,4,16,64 '{}'
            stop_server
        }
        pack
    done
    uptime >>"$OUT/machine.txt"
    pack && find "$OUT" -mindepth 1 ! -name served-gap.tgz -delete
    ls -la "$OUT"
    exit 0
fi

# 2. Served as quantplan's protocol asks: streamed, temperature 0, the default sampler chain.
start_server shared && {
    variant stream 1,16,64 '{}'
    # 3. One response per request: no per-token SSE events to write and parse.
    variant whole 16,64 '{"stream": false}'
    # 4. The shortest sampler chain: top-k 1 alone.
    variant topk1 16,64 '{"samplers": ["top_k"], "top_k": 1}'
    stop_server
}
# 5. Client and server on separate cores.
half=$(($(nproc) * 3 / 4))
start_server pinned taskset -c 0-$((half - 1)) && {
    variant pinned 16,64 '{}' taskset -c "$half-$(($(nproc) - 1))"
    stop_server
}
uptime >>"$OUT/machine.txt"
pack && find "$OUT" -mindepth 1 ! -name served-gap.tgz -delete
ls -la "$OUT"
