#!/usr/bin/env bash
# The device part of bench/llamacpp_server_gpu.py, run on the GPU machine in two calls kept
# back to back (the machine keeps /tmp/w between them only while it stays warm):
#   bash bench/llamacpp_server_gpu.sh build   # CUDA build + random-weight F16 GGUFs (~8 min)
#   bash bench/llamacpp_server_gpu.sh bench   # quantize, then llama-batched-bench (~6 min)
#   bash bench/llamacpp_server_gpu.sh http    # alone, on a fresh machine: build, 8B Q4_K_M,
#                                             # llama-server over HTTP at 1-64 (~7 min)
# Needs .llama-src/llama.cpp (the trimmed vendored tree) and .llama-src/tokenizer.gguf carried.
set -euo pipefail
export PYTHONUNBUFFERED=1
TREE=.llama-src/llama.cpp
W=/tmp/w
OUT=${OUT:-/tmp/out}
mkdir -p "$W/m" "$OUT"
BIN=$W/b/bin

build() {
    nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv >"$OUT/gpu.csv"
    lscpu >"$OUT/cpu.txt"
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
    # The managed build's CPU flags (AMX off); AVX-512 only where this CPU has it.
    cpu="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    if grep -q avx512f /proc/cpuinfo; then cpu="$cpu -DGGML_AVX512=ON"; fi
    (python3 bench/llamacpp_server_gpu.py model --shape 1b --out $W/m/1b-F16.gguf &&
        python3 bench/llamacpp_server_gpu.py model --shape 8b --out $W/m/8b-F16.gguf) \
        >"$OUT/models.log" 2>&1 &
    models=$!
    # shellcheck disable=SC2086
    cmake -S $TREE -B $W/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF $cpu -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
        >"$OUT/build.log" 2>&1
    start=$(date +%s)
    cmake --build $W/b -j16 --target llama-server llama-batched-bench llama-quantize \
        >>"$OUT/build.log" 2>&1
    echo "build_seconds $(($(date +%s) - start))" | tee -a "$OUT/build.log"
    wait $models
    ls -la $W/m | tee "$OUT/files.txt"
    $BIN/llama-server --version 2>&1 | tee "$OUT/version.txt"
}

bench() {
    for shape in 1b 8b; do
        for q in Q8_0 Q4_K_M; do
            [ -f $W/m/$shape-$q.gguf ] ||
                $BIN/llama-quantize $W/m/$shape-F16.gguf $W/m/$shape-$q.gguf $q 16 >/dev/null 2>&1
        done
    done
    ls -la $W/m | tee "$OUT/files.txt"
    results=$OUT/batched.jsonl
    : >"$results"
    # All layers on the GPU: 128 prompt + 64 generated tokens per sequence, 1..64 sequences.
    for shape in 1b 8b; do
        for q in F16 Q8_0 Q4_K_M; do
            $BIN/llama-batched-bench -m $W/m/$shape-$q.gguf -c 16384 -b 2048 -ub 512 -ngl 99 \
                -npp 128 -ntg 64 -npl 1,2,4,8,16,32,64 --output-format jsonl 2>&1 |
                tee -a "$OUT/bench.log" | grep '^{' | sed "s/^{/{\"model\": \"$shape-$q\", /" | tee -a "$results"
        done
    done
    # Partial offload of the 8B Q4_K_M: 8, 16, 24 of 32 blocks (33 = blocks + output: 100 %).
    for ngl in 8 16 24; do
        $BIN/llama-batched-bench -m $W/m/8b-Q4_K_M.gguf -c 8192 -b 2048 -ub 512 -ngl $ngl \
            -t 16 -npp 128 -ntg 32 -npl 1,4,16 --output-format jsonl 2>&1 |
            tee -a "$OUT/bench.log" | grep '^{' | sed "s/^{/{\"model\": \"8b-Q4_K_M\", /" | tee -a "$results"
    done
}

http() {
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
    cpu="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    if grep -q avx512f /proc/cpuinfo; then cpu="$cpu -DGGML_AVX512=ON"; fi
    python3 bench/llamacpp_server_gpu.py model --shape 8b --out $W/m/8b-F16.gguf \
        >"$OUT/models.log" 2>&1 &
    models=$!
    # shellcheck disable=SC2086
    cmake -S $TREE -B $W/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF $cpu -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
        >"$OUT/build.log" 2>&1
    cmake --build $W/b -j16 --target llama-server llama-quantize >>"$OUT/build.log" 2>&1
    wait $models
    $BIN/llama-quantize $W/m/8b-F16.gguf $W/m/8b-Q4_K_M.gguf Q4_K_M 16 >/dev/null 2>&1
    # One slot per sequence of the largest level, each with room for 128 + 64 tokens.
    $BIN/llama-server -m $W/m/8b-Q4_K_M.gguf --host 127.0.0.1 --port 8080 -np 64 \
        -c $((64 * 256)) -ngl 99 --cont-batching --metrics >"$OUT/server.log" 2>&1 &
    server=$!
    for _ in $(seq 120); do
        curl -sf http://127.0.0.1:8080/health >/dev/null && break
        sleep 1
    done
    python3 bench/llamacpp_server_gpu_http.py --port 8080 --levels "${LEVELS:-1,2,4,8,16,32,64}" \
        --rounds "${ROUNDS:-2}" --label 8b-Q4_K_M | tee "$OUT/http.jsonl"
    curl -s http://127.0.0.1:8080/metrics | grep -v '^#' >"$OUT/metrics.txt"
    kill $server
}

"$@"
