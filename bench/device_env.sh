# What every device-side bench script sets first (sourced): the work folder the machine keeps
# between back-to-back calls, where results go ($OUT), quantplan's cache and data there, and
# nvcc on PATH for the CUDA builds.
W=/tmp/qpw
OUT=${OUT:-/tmp/out}
BIN=$W/b/bin  # the llama.cpp tools build_llama_tools builds
MODELS=$W/m   # the GGUF files the scripts write and read
mkdir -p "$W" "$OUT" "$MODELS"
export OUT QP_WORK=$W QUANTPLAN_CACHE_DIR=$W/cache QUANTPLAN_DATA_DIR=$W/data PYTHONUNBUFFERED=1
nvcc=$(ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1 || true)
[ -n "$nvcc" ] && export PATH="$(dirname "$nvcc"):$PATH"

# Extract the carried llama.cpp tree (.devcarry/gd/llama.cpp.tar.xz) into .llama-src (the
# random-weight models are written with its gguf-py) and note the machine in $OUT/machine.txt.
extract_llama_tree() {
    mkdir -p .llama-src
    tar xJf .devcarry/gd/llama.cpp.tar.xz -C .llama-src
    { nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv; nproc
        grep -m1 'model name' /proc/cpuinfo; uptime; } >"$OUT/machine.txt" 2>&1
}

# Build the named tools of the extracted llama.cpp tree (.llama-src/llama.cpp) with CUDA for
# this card into $BIN, logging to $OUT/build.log.
build_llama_tools() {
    local arch start
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
    start=$(date +%s)
    cmake -S .llama-src/llama.cpp -B "$W/b" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON -DGGML_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$OUT/build.log" 2>&1
    cmake --build "$W/b" -j"$(nproc)" ${1:+--target "$@"} >>"$OUT/build.log" 2>&1
    echo "build_seconds $(($(date +%s) - start))" | tee -a "$OUT/build.log"
}

# Extract the tree, write the random-weight F16 GGUFs of the named shapes into $MODELS (in the
# background) while the named tools build, then note the first tool's version and the files:
#   build_tools_and_models "8b 1b" llama-bench llama-quantize
build_tools_and_models() {
    local shapes=$1 model shape
    shift
    extract_llama_tree
    (for shape in $shapes; do
        python3 bench/llamacpp_server_gpu.py model --shape "$shape" \
            --tokenizer .devcarry/gd/tokenizer.gguf --out "$MODELS/$shape-F16.gguf" || exit 1
    done) >"$OUT/model.log" 2>&1 &
    model=$!
    build_llama_tools "$@"
    wait $model
    echo "model rc $?" | tee -a "$OUT/model.log"
    "$BIN/$1" --version >"$OUT/version.txt" 2>&1 || true
    ls -la "$MODELS" | tee "$OUT/models.txt"
}
