# What every device-side bench script sets first (sourced): the work folder the machine keeps
# between back-to-back calls, where results go ($OUT), quantplan's cache and data there, and
# nvcc on PATH for the CUDA builds.
W=/tmp/qpw
OUT=${OUT:-/tmp/out}
mkdir -p "$W" "$OUT"
export OUT QP_WORK=$W QUANTPLAN_CACHE_DIR=$W/cache QUANTPLAN_DATA_DIR=$W/data PYTHONUNBUFFERED=1
nvcc=$(ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1 || true)
[ -n "$nvcc" ] && export PATH="$(dirname "$nvcc"):$PATH"
